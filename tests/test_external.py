"""Other databases: SNOMED-CT labels, whole records and ``evaluate --external_dir`` on the real
Challenge-layout records in ../shared/data/cinc."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from ecg_keras.data import ptbxl, snomed

from conftest import run_cli


def test_every_shared_code_is_in_the_table_and_statuses_follow_the_rules(real_cinc_dir):
    mapping = pd.read_csv(real_cinc_dir / "dx_mapping.csv")
    names = dict(zip(mapping.snomed, mapping.abbr, strict=True))
    headers = {p.stem: p.read_text() for p in sorted(real_cinc_dir.glob("*.hea"))}
    codes = {name: snomed.dx_codes(text) for name, text in headers.items()}
    assert len(codes) == 57 and all(codes.values())
    for code in {c for cs in codes.values() for c in cs}:
        assert code in snomed.CODES, code  # every code the shared records use is decided
    for code, entry in snomed.CODES.items():
        assert names.get(code) == entry.abbreviation, code  # as the Challenge's table names it
        assert (entry.superclass is not None) == (entry.kind == "diagnostic")
        assert entry.superclass in (None, *ptbxl.SUPERCLASSES)
    assert snomed.superclass_status([snomed.SINUS_RHYTHM]) == {
        "NORM": 1, "MI": 0, "STTC": 0, "CD": 0, "HYP": 0,
    }  # fmt: skip
    # Sinus rhythm with a left bundle branch block and LVH: CD and HYP, not normal.
    both = snomed.superclass_status([426783006, 164909002, 164873001])
    assert both == {"NORM": 0, "MI": 0, "STTC": 0, "CD": 1, "HYP": 1}
    # Rhythm or ectopy alone says nothing of the morphology: unknown, not negative.
    assert snomed.superclass_status([164889003]) is None  # atrial fibrillation
    assert snomed.superclass_status([426783006, 427172004]) is None  # sinus rhythm + PVCs
    assert snomed.superclass_status([]) is None
    statuses = [snomed.superclass_status(c) for c in codes.values()]
    assert 30 < sum(s is not None for s in statuses) < 57  # most are scored, some unknown
    with pytest.raises(ValueError, match="not a list of SNOMED-CT codes"):
        snomed.dx_codes("#Dx: 426783006,abc\n")


@pytest.mark.slow
def test_evaluate_external_dir_scores_whole_records_and_keeps_bad_ones(
    trained_run, real_cinc_dir, tmp_path
):
    workdir, _ = trained_run
    run = tmp_path / "run"
    shutil.copytree(workdir, run, ignore=shutil.ignore_patterns("logs", "backup"))
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for name in ("E00001", "Q0001", "S0001", "JS00001"):  # Georgia, CPSC-Extra, PTB, Chapman
        for suffix in (".hea", ".mat"):
            shutil.copy(real_cinc_dir / f"{name}{suffix}", mixed / f"{name}{suffix}")
    header = (mixed / "E00001.hea").read_text()  # Georgia's quirk: the record line names E00001.mat
    (mixed / "E00001.hea").write_text(header.replace("E00001 ", "E00001.mat ", 1))
    (mixed / "BAD1.hea").write_text("BAD1 12 500 5000\n#Dx: 426783006\n")  # no signal lines
    done = run_cli(
        "evaluate", f"--workdir={run}", f"--external_dir={real_cinc_dir}",
        f"--external_dir={mixed}",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    shared = json.loads((run / "external" / "cinc" / "metrics.json").read_text())
    assert shared["num_records"] == 57 and shared["num_refused"] == 0
    assert shared["num_scored"] + shared["num_unknown_status"] == 57
    assert set(shared["per_class_auc"]) == set(ptbxl.SUPERCLASSES)
    aucs = [a for a in shared["per_class_auc"].values() if a is not None]
    assert shared["macro_auc"] == pytest.approx(np.mean(aucs))
    low, high = shared["macro_auc_ci"]
    assert 0 <= low <= high <= 1
    assert "cinc: macro AUC" in done.stdout
    rows = pd.read_csv(run / "external" / "cinc" / "predictions.csv")
    assert len(rows) == 57 and rows[list(ptbxl.SUPERCLASSES)].notna().all().all()
    ptb = rows[rows.record.str.endswith("S0001")].iloc[0]
    assert "scored over its whole" in ptb.notes and "1000 Hz" in ptb.notes  # not its first 10 s
    mixed_result = json.loads((run / "external" / "mixed" / "metrics.json").read_text())
    assert mixed_result["num_records"] == 5 and mixed_result["num_refused"] == 1
    bad = pd.read_csv(run / "external" / "mixed" / "predictions.csv").set_index("record")
    assert bad.loc[str(mixed / "BAD1"), "status"] == "refused"
    assert str(mixed / "BAD1") in bad.loc[str(mixed / "BAD1"), "error"]
    # The Georgia header with the quirk scores as the shared one does.
    georgia = bad.loc[str(mixed / "E00001"), list(ptbxl.SUPERCLASSES)].to_numpy(float)
    shared_rows = rows.set_index("record")
    expected = shared_rows.loc[str(real_cinc_dir / "E00001"), list(ptbxl.SUPERCLASSES)]
    np.testing.assert_allclose(georgia, expected.to_numpy(float), atol=1e-6)
    html = (run / "report.html").read_text()
    assert 'id="external"' in html and ">cinc<" in html and ">mixed<" in html


@pytest.mark.slow
def test_a_long_record_is_judged_on_all_of_it(trained_run, real_ptbxl_dir):
    """10 s of a normal ECG followed by 10 s of bundle branch block: the 20 s record gets the
    block's CD probability, not the normal one's (it was judged on its first 10 s before)."""
    from ecg_keras.inference import records
    from ecg_keras.inference.predictor import Predictor

    workdir, _ = trained_run
    predictor = Predictor.from_workdir(workdir)
    db = ptbxl.load_database(real_ptbxl_dir)
    test = db[db.strat_fold == 10]
    codes = test.scp_codes.map(set)  # already parsed to dicts: their keys
    normal = [i for i in test.index if codes[i] == {"NORM", "SR"}][:20]
    blocks = [i for i in test.index if codes[i] & {"CLBBB", "CRBBB"}]
    signal = {
        i: ptbxl.read_signal(ptbxl.record_path(real_ptbxl_dir, db.loc[i], 100), 100)
        for i in normal + blocks
    }
    cd = predictor.classes.index("CD")
    alone = {i: records.score_record(predictor, s, 100.0)[0][cd] for i, s in signal.items()}
    calm = min(normal, key=alone.get)
    block = max(blocks, key=alone.get)
    assert alone[block] - alone[calm] > 0.3  # the model tells these two apart
    stitched = np.concatenate([signal[calm], signal[block]])  # [2000, 12]: 20 s
    got, notes = records.score_record(predictor, stitched, 100.0)
    assert notes == ["scored over its whole 20 s in 3 spans of 10 s"]  # 0, 8.75 and 10 s
    assert abs(got[cd] - alone[block]) <= 0.1, (got[cd], alone[block], alone[calm])
    first_10_s, _ = records.score_record(predictor, stitched[:1000], 100.0)
    assert first_10_s[cd] == pytest.approx(alone[calm], abs=1e-6)  # what the crop gave
