"""ecg_keras.data.ptbxl: label tasks, lead order and record checks."""

from collections import Counter

import numpy as np
import pytest
import wfdb

from ecg_keras.data import ptbxl

from conftest import write_record


def test_superdiagnostic_counts_on_real_subset(real_ptbxl_dir):
    # Counts stated in shared/data/ptbxl/SOURCE.md for the 1,987 records.
    tasks, db = ptbxl.load_tasks(real_ptbxl_dir), ptbxl.load_database(real_ptbxl_dir)
    counts, unlabeled = Counter(), 0
    for codes in db.scp_codes:
        names = tasks.labels(codes)["superdiagnostic"]
        counts.update(names)
        unlabeled += not names
    assert len(db) == 1987
    assert dict(counts) == {"NORM": 1051, "MI": 370, "STTC": 467, "CD": 410, "HYP": 215}
    assert unlabeled == 22


def test_task_class_lists_match_the_benchmark(real_ptbxl_dir):
    tasks = ptbxl.load_tasks(real_ptbxl_dir)
    sizes = {task: len(classes) for task, classes in tasks.classes.items()}
    assert sizes == {
        "superdiagnostic": 5,
        "subdiagnostic": 23,
        "diagnostic": 44,
        "form": 19,
        "rhythm": 12,
        "all": 71,
    }
    assert tasks.classes["superdiagnostic"] == ("NORM", "MI", "STTC", "CD", "HYP")
    assert list(tasks.classes["rhythm"]) == sorted(tasks.classes["rhythm"])


def test_labels_ignore_likelihood_and_map_subclasses(tiny_ptbxl):
    tasks = ptbxl.load_tasks(tiny_ptbxl)
    labels = tasks.labels({"CLBBB": 0.0, "LVH": 35.0, "SR": 0.0, "UNKNOWN": 100.0})
    assert labels["superdiagnostic"] == ["CD", "HYP"]
    assert labels["subdiagnostic"] == ["CLBBB", "LVH"]
    assert labels["rhythm"] == ["SR"]
    assert labels["form"] == []
    hot = tasks.multi_hot({"SR": 0.0})
    assert hot["superdiagnostic"].tolist() == [0, 0, 0, 0, 0]
    assert hot["all"].sum() == 1


def test_read_signal_matches_wfdb_in_mv(real_ptbxl_dir):
    db = ptbxl.load_database(real_ptbxl_dir)
    path = ptbxl.record_path(real_ptbxl_dir, db.loc[1], 100)
    signal = ptbxl.read_signal(path, 100, 1)
    reference, fields = wfdb.rdsamp(str(path))
    assert signal.shape == (1000, 12) and signal.dtype == np.float32
    assert [n.upper() for n in fields["sig_name"]] == [n.upper() for n in ptbxl.LEADS]
    np.testing.assert_allclose(signal, reference, atol=1e-6)


def test_read_signal_reorders_leads_by_header_names(tmp_path):
    signal = np.tile(np.arange(12, dtype=np.float64) / 10, (1000, 1))
    shuffled = [11, 0, 5, 3, 2, 1, 4, 6, 7, 8, 9, 10]
    write_record(
        tmp_path / "rec", signal[:, shuffled], 100, leads=[ptbxl.LEADS[i] for i in shuffled]
    )
    np.testing.assert_allclose(ptbxl.read_signal(tmp_path / "rec", 100)[0], signal[0], atol=1e-3)


def _broken(tmp_path, kind):
    signal = np.zeros((1000, 12))
    if kind == "leads":
        write_record(tmp_path / "rec", signal[:, :11], 100, leads=ptbxl.LEADS[:11])
    elif kind == "samples":
        write_record(tmp_path / "rec", signal[:900], 100)
    elif kind == "nan":
        signal[10, 3] = np.nan
        write_record(tmp_path / "rec", signal, 100)
    elif kind == "names":
        write_record(tmp_path / "rec", signal, 100, leads=[f"X{i}" for i in range(12)])
    else:
        write_record(tmp_path / "rec", signal, 100)
        dat, hea = tmp_path / "rec.dat", tmp_path / "rec.hea"
        if kind == "truncated":
            dat.write_bytes(dat.read_bytes()[:5000])
        elif kind == "header":
            hea.write_text("this is not a header\n")
        elif kind == "missing":
            dat.unlink()
    return tmp_path / "rec"


@pytest.mark.parametrize(
    "kind, message",
    [
        ("leads", "11 leads"),
        ("samples", "900 samples"),
        ("nan", "NaN"),
        ("names", "lead names"),
        ("truncated", "unreadable signal"),
        ("header", "unreadable header"),
        ("missing", "rec.dat not found"),
    ],
)
def test_read_signal_rejects_bad_records(tmp_path, kind, message):
    with pytest.raises(ptbxl.PtbxlError, match=message) as info:
        ptbxl.read_signal(_broken(tmp_path, kind), 100, ecg_id=77)
    assert "ecg_id 77" in str(info.value)


def test_read_signal_rejects_infinite_values(tmp_path, monkeypatch):
    # Format 16 cannot store inf, so the reader's output is patched.
    path = _broken(tmp_path, "ok")
    real = wfdb.rdrecord

    def rdrecord(*args, **kwargs):
        record = real(*args, **kwargs)
        record.p_signal[0, 0] = np.inf
        return record

    monkeypatch.setattr(wfdb, "rdrecord", rdrecord)
    with pytest.raises(ptbxl.PtbxlError, match="infinite"):
        ptbxl.read_signal(path, 100)


def test_missing_csv_names_the_file_and_how_to_download(tmp_path):
    with pytest.raises(ptbxl.PtbxlError, match="ptbxl_database.csv.*ecg_keras.download"):
        ptbxl.load_database(tmp_path)


def _challenge_header(name: str, units: str = "mV", fs: int = 500) -> str:
    """A Challenge-style header naming ``name``.mat (format 16 after a 24-byte header)."""
    lines = [f"{name} 12 {fs} {fs * 10}"]
    lines += [f"{name}.mat 16+24 1000/{units} 16 0 0 0 0 {lead}" for lead in ptbxl.LEADS]
    return "\n".join([*lines, "#Dx: 426783006"]) + "\n"


def test_read_any_record_names_the_missing_signal_file_the_header_names(tmp_path):
    (tmp_path / "A0001.hea").write_text(_challenge_header("A0001"))
    with pytest.raises(ptbxl.PtbxlError, match=r"A0001\.mat not found \(named in A0001\.hea\)"):
        ptbxl.read_any_record(tmp_path / "A0001")
    with pytest.raises(ptbxl.PtbxlError, match=r"B\.hea not found"):
        ptbxl.read_any_record(tmp_path / "B")


@pytest.mark.parametrize("case", [str.lower, str.upper])
def test_read_any_record_matches_lead_names_in_any_case(tmp_path, case):
    signal = np.tile(np.arange(12, dtype=np.float64) / 10, (500, 1))
    write_record(tmp_path / "rec", signal, 250, leads=[case(lead) for lead in ptbxl.LEADS])
    got, rate, notes = ptbxl.read_any_record(tmp_path / "rec")
    assert rate == 250.0 and notes == []
    np.testing.assert_allclose(got, signal, atol=1e-6)


@pytest.mark.parametrize(
    "units, encoding",
    [
        ("uV", "ascii"),
        ("V", "ascii"),
        ("\u00b5V", "utf-8"),
        ("\u00b5V", "latin-1"),
        ("\u03bcV", "utf-8"),
    ],
)
def test_read_any_record_converts_units_written_in_any_encoding(tmp_path, units, encoding):
    # wfdb alone reads a non-ASCII "\u00b5V" as "V", 10^6 times too large.
    signal = np.tile(np.linspace(-1, 1, 12), (1000, 1))  # mV
    write_record(tmp_path / "rec", signal, 100)  # 1000 adu/mV
    # The same samples, their gain restated in ``units``: 1000 adu/mV = 1 adu/uV = 1e6 adu/V.
    gain = "1000000" if units == "V" else "1"
    header = (tmp_path / "rec.hea").read_text().replace("1000.0(0)/mV", f"{gain}(0)/{units}")
    assert units in header
    (tmp_path / "rec.hea").write_bytes(header.encode(encoding))
    got, _, notes = ptbxl.read_any_record(tmp_path / "rec")
    np.testing.assert_allclose(got, signal, atol=1e-3)  # stored in 1 uV steps
    assert notes == [f"converted units [{units!r}] to mV"]


def test_read_any_record_refuses_rates_below_100_hz(tmp_path):
    write_record(tmp_path / "rec", np.zeros((500, 12)), 50)
    with pytest.raises(ptbxl.PtbxlError, match=r"rec: sampling rate 50 Hz; at least 100 Hz"):
        ptbxl.read_any_record(tmp_path / "rec")


def test_read_any_record_takes_a_record_line_that_names_the_signal_file(real_cinc_dir, tmp_path):
    """Georgia releases write ``E00001.mat 12 500 5000 ...`` as the record line, which
    ``wfdb.rdheader`` rejects; the record reads exactly as the well-formed header gives it."""
    import shutil

    source = real_cinc_dir / "E00001"
    shutil.copy(source.with_suffix(".mat"), tmp_path / "E00001.mat")
    header = source.with_suffix(".hea").read_text()
    assert header.startswith("E00001 12 500 5000")
    (tmp_path / "E00001.hea").write_text(header.replace("E00001 ", "E00001.mat ", 1))
    with pytest.raises(ValueError):  # what wfdb itself says of it
        wfdb.rdheader(str(tmp_path / "E00001"))
    got, rate, notes = ptbxl.read_any_record(tmp_path / "E00001")
    expected, expected_rate, _ = ptbxl.read_any_record(source)
    assert rate == expected_rate == 500 and notes == []
    np.testing.assert_array_equal(got, expected)
    assert np.abs(got).max() > 0.1  # a real ECG in mV, not zeros
    # A bare name that differs from the file's is still an error that names the header.
    (tmp_path / "E00001.hea").write_text(header.replace("E00001 ", "E99999.mat ", 1))
    with pytest.raises(ptbxl.PtbxlError, match="E00001: unreadable header"):
        ptbxl.read_any_record(tmp_path / "E00001")
