"""ecg_keras.predict: real PTB-XL records, and records that are resampled, padded, reordered,
stored in the Challenge's .mat layout or broken, one by one and by folder, through the
SavedModel and a .tflite file of ``exported`` (conftest.py)."""

import csv
import json
import os

import numpy as np
import pytest
import scipy.io
import scipy.signal
import wfdb

from ecg_keras.data import ptbxl
from ecg_keras.deploy import runtime
from ecg_keras.inference import records as predict

from conftest import assert_float_link, run_cli, write_record

META = {"sampling_rate": 100, "input_samples": 1000}

JSON_ROUNDING = 5e-7  # predict writes probabilities rounded to 6 decimals


def write_challenge_record(path, signal: np.ndarray, fs: int, leads=ptbxl.LEADS) -> None:
    """Writes ``signal`` (float [samples, leads] mV) as the PhysioNet/CinC Challenge 2020/2021
    store records: ``val`` int16 [leads, samples] (1000 adu/mV) in a MATLAB v4 ``.mat``, whose
    column-major data after a 24-byte header is WFDB format 16, and a hand-written ``.hea``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    val = np.round(signal.T * 1000).astype(np.int16)
    scipy.io.savemat(path.with_suffix(".mat"), {"val": val}, format="4")
    lines = [f"{path.name} {len(leads)} {fs} {val.shape[1]} 05:05:15 16/06/2020"]
    for row, lead in zip(val, leads, strict=True):
        checksum = (int(row.sum(dtype=np.int64)) + 32768) % 65536 - 32768
        lines.append(f"{path.name}.mat 16+24 1000/mV 16 0 {row[0]} {checksum} 0 {lead}")
    lines += ["#Age: 56", "#Sex: Female", "#Dx: 426783006", "#Rx: Unknown"]
    path.with_suffix(".hea").write_text("\n".join(lines) + "\n")


def _real_500hz(real_ptbxl_dir, fold=10):
    """(ecg_id, float32 [5000, 12] mV) of the first record of ``fold`` with a 500 Hz file."""
    db = ptbxl.load_database(real_ptbxl_dir)
    for ecg_id in db.index[db.strat_fold == fold]:
        path = ptbxl.record_path(real_ptbxl_dir, db.loc[ecg_id], 500)
        if path.with_suffix(".hea").is_file():
            return int(ecg_id), ptbxl.read_signal(path, 500)
    raise AssertionError(f"no 500 Hz record in fold {fold} of {real_ptbxl_dir}")


def test_fit_to_model_resamples_crops_and_pads():
    t = np.arange(5000) / 500
    signal = np.repeat(np.sin(2 * np.pi * 1.0 * t)[:, None], 12, 1).astype(np.float32)
    fitted, notes = predict.fit_to_model(signal, 500.0, META)
    assert fitted.shape == (1000, 12) and notes == ["resampled from 500 Hz to 100 Hz"]
    np.testing.assert_allclose(fitted[100:900, 0], signal[500:4500:5, 0], atol=1e-2)
    long, notes = predict.fit_to_model(signal[:1200:1], 100.0, META)
    assert long.shape == (1000, 12) and notes == ["cropped from 12 s to its first 10 s"]
    np.testing.assert_array_equal(long, signal[:1000])
    short, notes = predict.fit_to_model(signal[:600], 100.0, META)
    assert notes == ["padded from 6 s to 10 s by repeating it"]
    np.testing.assert_array_equal(short[600:1000], signal[:400])
    with pytest.raises(ptbxl.PtbxlError, match="at least 2.5 s"):
        predict.fit_to_model(signal[:200], 100.0, META)


def test_predict_cli_real_resampled_padded_and_bad_records(exported, real_ptbxl_dir, tmp_path):
    _, version_dir, _ = exported
    db = ptbxl.load_database(real_ptbxl_dir)
    ecg_id = int(db.index[db.strat_fold == 10][0])
    real = ptbxl.record_path(real_ptbxl_dir, db.loc[ecg_id], 100)
    signal = ptbxl.read_signal(real, 100)
    # 500 Hz: the same record upsampled, so that the model's resampling should undo it.
    write_record(tmp_path / "hr", scipy.signal.resample_poly(signal, 5, 1, axis=0), 500)
    write_record(tmp_path / "short", signal[:600], 100)
    order = list(reversed(range(12)))
    write_record(
        tmp_path / "reordered", signal[:, order], 100, leads=[ptbxl.LEADS[i] for i in order]
    )
    write_record(tmp_path / "leads11", signal[:, :11], 100, leads=ptbxl.LEADS[:11])
    holes = signal.copy()
    holes[100:110, 1] = np.nan
    write_record(tmp_path / "nan", holes, 100)
    names = ["hr", "short", "reordered", "missing", "leads11", "nan"]
    # The child runs with oneDNN off, another kernel order than this process's reference: its
    # answers must still agree within the export check's float32 contract.
    done = run_cli(
        "predict",
        f"--model={version_dir}",
        f"--record={real}",
        *[f"--record={tmp_path / n}" for n in names],
        env={"TF_ENABLE_ONEDNN_OPTS": "0"},
    )
    assert done.returncode == 1, done.stderr[-3000:]
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["record"] for line in lines] == [str(real)] + [str(tmp_path / n) for n in names]
    first, hr, short, reordered, missing, leads11, nan = lines

    saved_model = runtime.load(version_dir)
    expected = saved_model(signal[None])["probabilities"][0]
    classes, calibration = saved_model.metadata["classes"], saved_model.metadata["calibration"]
    got = [first["probabilities"][c] for c in classes]
    assert_float_link([got], [expected], calibration, slack=JSON_ROUNDING, err_msg="first")
    thresholds = saved_model.metadata["thresholds"]
    above = expected >= np.asarray(thresholds, np.float32)
    assert first["labels"] == [c for c, a in zip(classes, above, strict=True) if a]
    assert first["notes"] == []
    assert hr["notes"] == ["resampled from 500 Hz to 100 Hz"]
    np.testing.assert_allclose([hr["probabilities"][c] for c in classes], expected, atol=0.05)
    assert short["notes"] == ["padded from 6 s to 10 s by repeating it"]
    assert set(short["probabilities"]) == set(classes)
    assert reordered["notes"][0].startswith("reordered leads ['I', 'II'")
    got = [reordered["probabilities"][c] for c in classes]
    assert_float_link([got], [expected], calibration, slack=JSON_ROUNDING, err_msg="reordered")
    assert "missing.hea not found" in missing["error"]
    assert "11 leads" in leads11["error"] and "missing ['V6']" in leads11["error"]
    assert "NaN" in nan["error"]
    for line in (missing, leads11, nan):
        assert "probabilities" not in line and f"error: {line['error']}" in done.stderr
    assert "error: 3 of 7 records failed" in done.stderr


def test_predict_cli_tflite_by_ecg_id(exported, real_ptbxl_dir):
    _, version_dir, _ = exported
    db = ptbxl.load_database(real_ptbxl_dir)
    ecg_ids = [int(i) for i in db.index[db.strat_fold == 10][:2]]
    tflite = version_dir / "tflite" / "float32.tflite"
    done = run_cli(
        "predict",
        f"--model={tflite}",
        f"--ptbxl_dir={real_ptbxl_dir}",
        f"--ecg_ids={ecg_ids[0]},{ecg_ids[1]}",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["ecg_id"] for line in lines] == ecg_ids
    saved_model = runtime.load(version_dir)
    signals = np.stack(
        [ptbxl.read_signal(ptbxl.record_path(real_ptbxl_dir, db.loc[i], 100), 100) for i in ecg_ids]
    )
    expected = saved_model(signals)["probabilities"]
    got = [[line["probabilities"][c] for c in saved_model.metadata["classes"]] for line in lines]
    calibration = saved_model.metadata["calibration"]
    assert_float_link(got, expected, calibration, slack=JSON_ROUNDING, err_msg="tflite")

    bad = run_cli("predict", f"--model={version_dir / 'nothing.tflite'}", f"--record={tflite}")
    assert bad.returncode == 1 and "error: " in bad.stderr and "nothing.tflite" in bad.stderr


def test_resampling_a_baseline_offset_has_no_edge_transients(real_ptbxl_dir):
    # Smooth (< 8 Hz) 12-lead signal on a 2 mV offset and a 0.1 mV/s slope: decimating it is
    # exact, so any difference at the ends is the resampler's.
    t = np.arange(5000) / 500
    waves = 0.4 * np.sin(2 * np.pi * 1.1 * t) + 0.1 * np.sin(2 * np.pi * 4.7 * t + 1)
    signal = np.float32(waves[:, None] * np.linspace(0.5, 1.5, 12) + 2.0 + 0.1 * t[:, None])
    fitted, _ = predict.fit_to_model(signal, 500.0, META)
    zero_padded = scipy.signal.resample_poly(signal, 1, 5, axis=0)  # scipy's default padding
    edges = np.r_[0:10, 990:1000]  # the first and last 0.1 s
    error = np.abs(fitted - signal[::5])[edges]
    zero_error = np.abs(zero_padded - signal[::5])[edges]
    assert error.max() < 0.005, error.max(axis=1)
    assert zero_error[:10].max() > 0.5 and zero_error[10:].max() > 0.2

    # A real ECG with the same offset, cropped to 1-9 s: its ends should match the full
    # record's resampling, which had the real continuation on both sides.
    db = ptbxl.load_database(real_ptbxl_dir)
    hr = ptbxl.read_signal(ptbxl.record_path(real_ptbxl_dir, db.loc[1], 500), 500) + 2.0
    full = scipy.signal.resample_poly(hr, 1, 5, axis=0)[100:900]
    fitted, _ = predict.fit_to_model(hr[500:4500], 500.0, META)
    zero_padded = scipy.signal.resample_poly(hr[500:4500], 1, 5, axis=0)
    edges = np.r_[0:10, 790:800]
    assert np.abs(fitted[:800] - full)[edges].max() < 0.02
    assert np.abs(zero_padded - full)[edges].max() > 0.5


def test_predict_cli_challenge_mat_and_lead_name_case(exported, real_ptbxl_dir, tmp_path):
    _, version_dir, _ = exported
    _, signal = _real_500hz(real_ptbxl_dir)
    write_record(tmp_path / "dat" / "A0001", signal, 500)
    write_challenge_record(tmp_path / "mat" / "A0001", signal, 500)
    write_record(tmp_path / "lower", signal, 500, leads=[lead.lower() for lead in ptbxl.LEADS])
    write_record(tmp_path / "upper", signal, 500, leads=[lead.upper() for lead in ptbxl.LEADS])
    mat = wfdb.rdrecord(str(tmp_path / "mat" / "A0001"))
    assert mat.file_name[0] == "A0001.mat" and mat.fmt[0] == "16" and mat.byte_offset[0] == 24
    dat = wfdb.rdrecord(str(tmp_path / "dat" / "A0001"))
    np.testing.assert_array_equal(mat.p_signal, dat.p_signal)

    names = ["dat/A0001", "mat/A0001", "lower", "upper"]
    done = run_cli(
        "predict", f"--model={version_dir}", *[f"--record={tmp_path / n}" for n in names]
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["record"] for line in lines] == [str(tmp_path / n) for n in names]
    classes = runtime.load(version_dir).metadata["classes"]
    by_dat = [lines[0]["probabilities"][c] for c in classes]
    for line in lines:
        assert line["notes"] == ["resampled from 500 Hz to 100 Hz"], line
        got = [line["probabilities"][c] for c in classes]
        np.testing.assert_allclose(got, by_dat, atol=1e-5, err_msg=line["record"])


def _mixed_folder(folder, signal):
    """Good and bad records in ``folder``; returns their names, sorted, and the bad ones'
    expected error fragments."""
    write_record(folder / "a_good", signal, 100)
    write_challenge_record(folder / "b_good_mat", signal, 100)
    write_record(folder / "c_no_dat", signal, 100)
    (folder / "c_no_dat.dat").unlink()
    write_record(folder / "d_six_leads", signal[:, :6], 100, leads=ptbxl.LEADS[:6])
    write_record(folder / "e_short", signal[:200], 100)
    holes = signal.copy()
    holes[500:505, 3] = np.nan
    write_record(folder / "f_nan", holes, 100)
    write_record(folder / "g_50hz", signal[::2], 50)
    (folder / "notes.txt").write_text("not a record\n")
    errors = {
        "c_no_dat": "c_no_dat.dat not found",
        "d_six_leads": "6 leads",
        "e_short": "2.00 s long",
        "f_nan": "NaN",
        "g_50hz": "sampling rate 50 Hz; at least 100 Hz",
    }
    return ["a_good", "b_good_mat", *errors], errors


def test_predict_cli_record_dir_to_csv_and_jsonl(exported, real_ptbxl_dir, tmp_path):
    _, version_dir, _ = exported
    saved_model = runtime.load(version_dir)
    classes = saved_model.metadata["classes"]
    db = ptbxl.load_database(real_ptbxl_dir)
    ecg_ids = [int(i) for i in db.index[db.strat_fold == 10][:10]]
    signal = ptbxl.read_signal(ptbxl.record_path(real_ptbxl_dir, db.loc[ecg_ids[0]], 100), 100)
    expected = saved_model(signal[None])["probabilities"][0]
    mixed, listed = tmp_path / "mixed", tmp_path / "listed"
    names, errors = _mixed_folder(mixed, signal)
    # RECORDS: only the records it lists, in its order, subfolders included.
    for name in ["sub/x", "y", "not_listed"]:
        write_record(listed / name, signal, 100)
    (listed / "RECORDS").write_text("y\nsub/x\n\nghost\n")
    out = tmp_path / "predictions.csv"

    done = run_cli(
        "predict",
        f"--model={version_dir}",
        f"--record={mixed / 'a_good'}",
        f"--record_dir={mixed}",
        f"--record_dir={listed}",
        f"--ptbxl_dir={real_ptbxl_dir}",
        f"--ecg_ids={','.join(map(str, ecg_ids))},999999",
        f"--output={out}",
    )
    assert done.returncode == 1, done.stderr[-3000:]
    assert done.stdout == "" and sorted(os.listdir(tmp_path)) == ["listed", "mixed", out.name]
    with out.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["record", "ecg_id", *classes, "labels", "notes", "error"]
    paths = [mixed / n for n in ["a_good", *names]] + [listed / n for n in ["y", "sub/x", "ghost"]]
    assert [r["record"] for r in rows] == [str(p) for p in paths] + [
        *(str(ptbxl.record_path(real_ptbxl_dir, db.loc[i], 100)) for i in ecg_ids),
        "ecg_id 999999",
    ]
    assert [r["ecg_id"] for r in rows[-11:]] == [str(i) for i in [*ecg_ids, 999999]]
    assert all(r["ecg_id"] == "" for r in rows[:-11])
    assert sum(not r["error"] for r in rows) == len(rows) - len(errors) - 2  # ghost, 999999
    for row in [rows[0], rows[1], rows[2], rows[8], rows[9], rows[-11]]:  # the same signal
        np.testing.assert_allclose([float(row[c]) for c in classes], expected, atol=1e-5)
    above = expected >= np.asarray(saved_model.metadata["thresholds"], np.float32)
    assert rows[0]["labels"] == ";".join(c for c, a in zip(classes, above, strict=True) if a)
    for name, fragment in errors.items():
        row = rows[1 + names.index(name)]
        assert fragment in row["error"] and row[classes[0]] == "" and row["labels"] == ""
        assert f"error: {row['error']}" in done.stderr
    assert ".hea not found" in rows[10]["error"] and "not in the CSV" in rows[-1]["error"]
    assert "error: 7 of 22 records failed" in done.stderr
    assert "22/22" in done.stderr and "record/s" in done.stderr  # the progress bar

    jsonl = tmp_path / "mixed.jsonl"
    done = run_cli(
        "predict", f"--model={version_dir}", f"--record_dir={mixed}", f"--output={jsonl}"
    )
    assert done.returncode == 1 and "record/s" not in done.stderr, done.stderr[-3000:]
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [line["record"] for line in lines] == [str(mixed / n) for n in names]
    assert lines[1]["notes"] == "" and lines[1]["ecg_id"] is None and lines[1]["error"] is None
    np.testing.assert_allclose([lines[1][c] for c in classes], expected, atol=1e-5)
    assert lines[2][classes[0]] is None and "c_no_dat.dat not found" in lines[2]["error"]


def test_predict_cli_flag_errors_come_before_any_work(tmp_path):
    write_record(tmp_path / "rec", np.zeros((1000, 12)), 100)
    for flag, message in [
        (f"--output={tmp_path / 'out.txt'}", "unknown extension '.txt'; use .csv or .jsonl"),
        (f"--output={tmp_path / 'no' / 'out.csv'}", "does not exist"),
        (f"--record_dir={tmp_path / 'none'}", "not a folder"),
    ]:
        # The model does not exist: these errors must come before loading it.
        done = run_cli(
            "predict", f"--model={tmp_path / 'missing'}", f"--record={tmp_path / 'rec'}", flag
        )
        assert done.returncode == 1 and message in done.stderr, done.stderr[-3000:]
        assert "neither a SavedModel" not in done.stderr
    assert sorted(os.listdir(tmp_path)) == ["rec.dat", "rec.hea"]


MAX_META = {
    "sampling_rate": 100,
    "input_samples": 1000,
    "windows": {"seconds": 2.5, "stride_seconds": 1.25, "count": 7, "aggregate": "max"},
    "calibration": None,
}


def test_long_records_are_cut_into_spans_whose_windows_continue_one_grid():
    signal = np.arange(2600 * 12, dtype=np.float32).reshape(2600, 12)  # 26 s at 100 Hz
    spans, starts, notes = predict.spans_for_model(signal, 100.0, MAX_META)
    # 8.75 s apart: each span's 7 windows (0, 1.25 ... 7.5 s) continue the previous span's.
    assert starts == [0, 875, 1600] and spans.shape == (3, 1000, 12)
    assert notes == ["scored over its whole 26 s in 3 spans of 10 s"]
    window_starts = sorted({s + k * 125 for s in starts[:2] for k in range(7)})
    assert window_starts == list(range(0, 14 * 125, 125))  # one grid, no gap, no repeat
    np.testing.assert_array_equal(spans[2], signal[1600:])  # the last span ends the record
    one, starts, _ = predict.spans_for_model(signal[:1000], 100.0, MAX_META)
    assert starts == [0] and one.shape == (1, 1000, 12)
    assert predict.span_starts(1875, MAX_META) == [0, 875]  # the grid reaches the end exactly


def test_spans_combine_as_one_record_of_all_their_windows():
    from ecg_keras.training import calibration

    rng = np.random.default_rng(0)
    windows = rng.uniform(0.01, 0.99, (3, 7, 2))  # [spans, windows, classes]
    params = calibration.fit(rng.integers(0, 2, (40, 2)), rng.uniform(0.05, 0.95, (40, 2)))
    starts = [0, 875, 1600]
    # What the signature gives per span: the calibrated max of the span's windows.
    outputs = {
        "probabilities": calibration.apply(params, windows.max(1)),
        "window_probabilities": windows,
    }
    meta = {**MAX_META, "calibration": params}
    got = predict.combine_spans(outputs, starts, meta)
    np.testing.assert_allclose(got, calibration.apply(params, windows.max((0, 1))[None])[0])
    # mean: every distinct window once (the last span's windows are off the grid: all count).
    mean_meta = {**meta, "windows": {**meta["windows"], "aggregate": "mean"}}
    got = predict.combine_spans(outputs, starts, mean_meta)
    expected = calibration.apply(params, windows.reshape(-1, 2).mean(0)[None])[0]
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    overlap = predict.combine_spans(outputs, [0, 125, 1600], mean_meta)  # 6 shared windows
    assert not np.allclose(overlap, expected)
