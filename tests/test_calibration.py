"""training/calibration.py: ECE, Brier, the per-class Platt fit, and the calibration as
``evaluate`` records it and the export applies it (on the real ``trained_run`` / ``exported``)."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import brier_score_loss

from ecg_keras.training import calibration, metrics

from conftest import assert_float_link

KEYS = {"ece", "brier", "ece_uncalibrated", "brier_uncalibrated"}


def test_ece_hand_computed():
    # 15 bins of width 1/15. Column 0: 0.1 (bin 1), 0.9 (bin 13), 0.95 (bin 14) alone in their
    # bins; column 1: 0.2 and 0.22 share bin 3 (mean 0.21, one positive of two), and 1.0 falls
    # in the last bin, with 0.95.
    y = np.array([[0, 1], [1, 0], [0, 1]])
    p = np.array([[0.1, 0.2], [0.9, 0.22], [0.95, 1.0]])
    # bins: 1 -> |0 - 0.1|; 13 -> |1 - 0.9|; 3 -> |1 - 0.42|; 14 -> |1 - 1.95|; over 6.
    expected = (0.1 + 0.1 + 0.58 + 0.95) / 6
    assert calibration.expected_calibration_error(y, p) == pytest.approx(expected)
    assert calibration.expected_calibration_error(y, y) == 0.0
    assert calibration.expected_calibration_error(y, p, bins=1) == pytest.approx(
        abs(3 - p.sum()) / 6
    )
    assert calibration.brier_score(y, p) == pytest.approx(brier_score_loss(y.ravel(), p.ravel()))
    with pytest.raises(ValueError, match="labels"):
        calibration.expected_calibration_error(y, p[:2])


def _biased(n=20000, seed=0):
    """Records whose true log-odds are 0.5 z - 1 while the model says z (overconfident and
    shifted up, like a max over windows): y int [n, 2], p float32 [n, 2]."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 3.0, (n, 2))
    y = (rng.random((n, 2)) < 1 / (1 + np.exp(-(0.5 * z - 1.0)))).astype(np.int64)
    return y, (1 / (1 + np.exp(-z))).astype(np.float32)


def test_platt_recovers_the_map_and_keeps_every_auc():
    y, p = _biased()
    params = calibration.fit(y, p)
    np.testing.assert_allclose(params["a"], 0.5, atol=0.05)
    np.testing.assert_allclose(params["b"], -1.0, atol=0.1)
    exact = np.asarray(params["a"] + params["b"])
    assert (exact.astype(np.float16).astype(np.float64) == exact).all()  # float16-exact
    q = calibration.apply(params, p)
    before, after = (calibration.expected_calibration_error(y, v) for v in (p, q))
    assert after < 0.02 < 0.1 < before
    np.testing.assert_allclose(metrics.per_class_auc(y, q), metrics.per_class_auc(y, p), atol=1e-12)
    # A temperature alone (b = 0) cannot move the shift: it stays far worse.
    temperature = calibration.fit(y, p, "temperature")
    assert temperature["b"] == [0.0, 0.0]
    assert calibration.expected_calibration_error(y, calibration.apply(temperature, p)) > 2 * after
    # A class without both labels keeps the identity.
    y[:, 1] = 1
    assert calibration.fit(y, p)["a"][1] == 1.0 and calibration.fit(y, p)["b"][1] == 0.0
    with pytest.raises(ValueError, match="isotonic"):
        calibration.fit(y, p, "isotonic")


def test_numpy_and_tensorflow_maps_agree_and_increase():
    params = {"a": [0.5, 1.5], "b": [-1.0, 0.25], "logit_bound": calibration.LOGIT_BOUND}
    grid = np.concatenate([[0.0, 1e-9, 1e-6], np.linspace(1e-5, 1 - 1e-5, 997), [1 - 1e-7, 1.0]])
    p = np.stack([grid, grid], 1).astype(np.float32)
    q = calibration.apply(params, p)
    tf_q = calibration.apply_tf(params, p).numpy()
    np.testing.assert_allclose(tf_q, q, atol=1e-6)
    assert np.isfinite(tf_q).all()
    # From logits (the export's path for a max over windows): the same map, clip included.
    logits = np.log(p[3:-2]) - np.log1p(-p[3:-2])
    from_logits = calibration.apply_tf_to_logits(params, np.r_[[[-40, -40]], logits, [[40, 40]]])
    np.testing.assert_allclose(from_logits.numpy(), np.r_[q[:1], q[3:-2], q[-1:]], atol=1e-6)
    z = np.log(p[:, 0]) - np.log1p(-p[:, 0])
    inside = np.abs(z) < calibration.LOGIT_BOUND
    assert (np.diff(q[inside], axis=0) > 0).all()  # strictly increasing inside the clip


def test_evaluate_records_calibration(trained_run):
    workdir, result = trained_run
    saved = json.loads((workdir / "metrics.json").read_text())
    assert saved["calibration"]["method"] == "platt" and len(saved["calibration"]["a"]) == 5
    assert all(a > 0 for a in saved["calibration"]["a"])
    for split in ("val", "test"):
        assert set(saved[split]) >= KEYS and all(0 <= saved[split][k] <= 1 for k in KEYS)
    test = saved["test"]
    # Max over seven windows pushes probabilities up; calibration fitted on validation undoes
    # most of it on test.
    assert test["ece"] < test["ece_uncalibrated"] and test["brier"] < test["brier_uncalibrated"]
    # The stored test probabilities are the model's own; calibrating them keeps every AUC and
    # reproduces the calibrated ECE.
    frame = pd.read_csv(workdir / "predictions_test.csv")
    p, y = frame[saved["classes"]].to_numpy(), _test_records(workdir, frame).labels
    # The CSV rounds probabilities, which can move one of the 1,260 across a bin edge: each
    # move changes the ECE by at most 2/1260, so allow a few.
    ece = calibration.expected_calibration_error
    assert test["ece_uncalibrated"] == pytest.approx(ece(y, p), abs=5e-3)
    q = calibration.apply(saved["calibration"], p)
    assert test["ece"] == pytest.approx(ece(y, q), abs=5e-3)
    # The map never swaps two records; it can only tie them (the LOGIT_BOUND clip near 0 and 1,
    # float32 near 1), and each newly tied positive-negative pair moves the AUC by exactly half
    # a pair: the AUC changes by no more than that, and not at all without such pairs.
    for k in range(len(saved["classes"])):
        pos, neg = y[:, k] == 1, y[:, k] == 0
        tied = (q[pos, k][:, None] == q[neg, k][None, :]) & (
            p[pos, k][:, None] != p[neg, k][None, :]
        )
        bound = 0.5 * tied.sum() / (pos.sum() * neg.sum()) + 1e-12
        change = metrics.per_class_auc(y, q)[k] - metrics.per_class_auc(y, p)[k]
        assert abs(change) <= bound, (saved["classes"][k], change, bound)
    # The CSV's 6 decimals can tie (or swap) a positive and a negative less than 1e-6 apart,
    # and only those pairs can move its AUC from the one metrics.json scored unrounded: by
    # at most their share of the class's pairs (0 on one CPU, 8.5e-5 on another).
    for k, recorded in enumerate(test["per_class_auc"]):
        pos, neg = p[y[:, k] == 1, k], p[y[:, k] == 0, k]
        near = (np.abs(pos[:, None] - neg[None, :]) <= 1e-6 + 1e-12).sum()
        bound = near / (len(pos) * len(neg)) + 1e-12
        assert abs(metrics.per_class_auc(y, p)[k] - recorded) <= bound, saved["classes"][k]
    assert (workdir / "reliability.png").read_bytes()[:4] == b"\x89PNG"


def _test_records(workdir, frame):
    """``export_check.Records`` of the test ecg_ids in ``frame``, in its order."""
    from ecg_keras.deploy import export_check
    from ecg_keras.training.run import Run

    run = Run.load(workdir)
    records = export_check.load_records(run, run.config.test_folds)
    rows = [{int(i): k for k, i in enumerate(records.ecg_ids)}[int(i)] for i in frame["ecg_id"]]
    return export_check.Records(records.ecg_ids[rows], records.signals[rows], records.labels[rows])


def test_export_applies_and_records_the_calibration(exported):
    from ecg_keras.deploy import runtime, serving

    result, version_dir, workdir = exported
    saved = json.loads((workdir / "metrics.json").read_text())
    meta = json.loads((version_dir / "assets.extra" / serving.METADATA).read_text())
    assert meta["calibration"] == saved["calibration"] and meta["thresholds"] == saved["thresholds"]
    # The artifacts serve calibrated probabilities: evaluate's (rounded to 6 digits in the CSV)
    # through the recorded map, not the model's own.
    frame = pd.read_csv(workdir / "predictions_test.csv").iloc[:32]
    own = frame[saved["classes"]].to_numpy()
    expected = calibration.apply(meta["calibration"], own)
    # The CSV holds 6 decimals: each probability is off by up to 5e-7 before calibration.
    ends = [calibration.apply(meta["calibration"], np.clip(own + d, 0, 1)) for d in (-5e-7, 5e-7)]
    rounding = np.abs(ends[1].astype(np.float64) - ends[0]) / 2
    records = _test_records(workdir, frame).signals
    for path in (version_dir, version_dir / "tflite" / "float32.tflite"):
        served = runtime.load(path)(records)
        assert_float_link(served["probabilities"], expected, meta["calibration"], rounding, path)
        assert np.abs(served["probabilities"] - own).max() > 0.01  # calibration moved them
        above = served["probabilities"] >= np.float32(meta["thresholds"])
        np.testing.assert_array_equal(served["labels"], above.astype(np.int32))
    checks = {a["name"]: a["check"] for a in result["artifacts"]}
    assert checks["keras"]["reference"] == "evaluate" and checks["keras"]["bound_used"] <= 1
