"""ecg_keras.predict: real PTB-XL records, and records that are resampled, padded, reordered
or broken, through the SavedModel and a .tflite file of ``exported`` (conftest.py)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.signal

from ecg_keras import predict, ptbxl, runtime

from conftest import write_record

META = {"sampling_rate": 100, "input_samples": 1000}


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "ecg_keras.predict", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )


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
    done = _cli(
        f"--model={version_dir}", f"--record={real}", *[f"--record={tmp_path / n}" for n in names]
    )
    assert done.returncode == 1, done.stderr[-3000:]
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["record"] for line in lines] == [str(real)] + [str(tmp_path / n) for n in names]
    first, hr, short, reordered, missing, leads11, nan = lines

    saved_model = runtime.load(version_dir)
    expected = saved_model(signal[None])["probabilities"][0]
    classes = saved_model.metadata["classes"]
    np.testing.assert_allclose([first["probabilities"][c] for c in classes], expected, atol=1e-5)
    thresholds = saved_model.metadata["thresholds"]
    above = expected >= np.asarray(thresholds, np.float32)
    assert first["labels"] == [c for c, a in zip(classes, above, strict=True) if a]
    assert first["notes"] == []
    assert hr["notes"] == ["resampled from 500 Hz to 100 Hz"]
    np.testing.assert_allclose([hr["probabilities"][c] for c in classes], expected, atol=0.05)
    assert short["notes"] == ["padded from 6 s to 10 s by repeating it"]
    assert set(short["probabilities"]) == set(classes)
    assert reordered["notes"][0].startswith("reordered leads ['I', 'II'")
    np.testing.assert_allclose(
        [reordered["probabilities"][c] for c in classes], expected, atol=1e-5
    )
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
    done = _cli(
        f"--model={tflite}", f"--ptbxl_dir={real_ptbxl_dir}", f"--ecg_ids={ecg_ids[0]},{ecg_ids[1]}"
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
    np.testing.assert_allclose(got, expected, atol=1e-4)

    bad = _cli(f"--model={version_dir / 'nothing.tflite'}", f"--record={tflite}")
    assert bad.returncode == 1 and "error: " in bad.stderr and "nothing.tflite" in bad.stderr
