"""ecg_keras.analysis.robustness and benchmarks/robustness_bench.py: the same recording at
100 Hz and at 500 Hz, with shuffled leads or in µV, gets the same answer from a real trained run."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ecg_keras.analysis import robustness
from ecg_keras.inference import predictor

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def paired(trained_run, real_ptbxl_dir):
    """The session's trained run and its answers for 120 recordings present at both rates."""
    model = predictor.load(trained_run[0])
    pairs = robustness.read_pairs(real_ptbxl_dir, model.metadata, limit=120)
    return model, pairs, model.probabilities(pairs.low), model.probabilities(pairs.high)


def test_differences_summarize_per_class_and_per_record():
    a = np.array([[0.1, 0.5], [0.2, 0.2], [0.9, 0.0]])
    b = np.array([[0.1, 0.4], [0.5, 0.2], [0.9, 0.05]])
    out = robustness.differences(a, b, ["X", "Y"])
    assert out["per_class"]["X"]["max"] == pytest.approx(0.3)
    assert out["per_class"]["Y"]["median"] == pytest.approx(0.05)
    assert out["per_record_max"]["max"] == pytest.approx(0.3)
    assert out["per_record_max"]["median"] == pytest.approx(0.1)
    worst = robustness.worst(a, b, [7, 8, 9], ["X", "Y"], count=1)
    assert worst == [{"ecg_id": 8, "class": "X", "a": 0.2, "b": 0.5}]


def test_pairs_are_the_same_recordings(paired, real_ptbxl_dir):
    _, pairs, _, _ = paired
    assert len(pairs.ecg_ids) == 120 and pairs.low.shape == pairs.high.shape == (120, 1000, 12)
    # PhysioNet's 100 Hz file and predict's resampling of the 500 Hz file agree closely.
    error = np.abs(pairs.low - pairs.high)[:, 10:-10].mean((1, 2))
    assert np.median(error) < 0.01, np.median(error)


def test_100hz_and_500hz_files_get_the_same_answer(paired):
    """A 4-epoch run. With bins up to 50 Hz (before) the quickstart model's per-record
    difference reached 0.94 (95th percentile 0.81); a correct pipeline stays far below."""
    model, pairs, p_low, p_high = paired
    assert p_low.std(0).max() > 0.05  # the model answers differently for different records
    out = robustness.differences(p_low, p_high, model.metadata["classes"])
    assert out["per_record_max"]["p95"] <= 0.03, out["per_record_max"]
    assert out["per_record_max"]["max"] <= 0.08, out["per_record_max"]


def test_shuffled_leads_and_micro_volts_change_nothing(paired):
    model, pairs, p_low, _ = paired
    paths = pairs.low_paths[:20]
    shuffled = model.probabilities(robustness.rewritten(paths, model.metadata, 0, False))
    micro = model.probabilities(robustness.rewritten(paths, model.metadata, None, True))
    np.testing.assert_allclose(shuffled, p_low[:20], atol=1e-5)
    np.testing.assert_allclose(micro, p_low[:20], atol=1e-5)


def test_benchmark_prints_one_json_object(trained_run, real_ptbxl_dir):
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "robustness_bench.py"),
            f"--workdir={trained_run[0]}",
            f"--ptbxl_dir={real_ptbxl_dir}",
            "--limit=100",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["pairs"] == 100
    assert set(result["rate_100_vs_500"]["per_class"]) == {"NORM", "MI", "STTC", "CD", "HYP"}
    assert result["test_macro_auc"]["records"] > 5
    assert result["shuffled_leads"]["max"] < 1e-5 and result["micro_volts"]["max"] < 1e-5
    assert set(result["goals"]) == {
        "per_record_max_le_0.05",
        "per_record_p95_le_0.02",
        "test_auc_within_0.01",
        *(f"delay_{d}_sample_{g}" for d in ("1", "0.12") for g in ("max_le_0.05", "p95_le_0.02")),
    }
    # A delay moves the answers (the test run is the magnitude input), a smaller one less.
    one, tenth = (result[f"delay_{d}_sample"]["per_record_max"] for d in ("1", "0.12"))
    assert 0 < tenth["median"] < one["median"] and one["max"] <= 1
