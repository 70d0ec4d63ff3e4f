"""Explanations (integrated gradients on the raw ECG): completeness, the two sanity checks on a
trained model and real records, a 1D model, and the ``explain`` command."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from ecg_keras.analysis import attribution, explain_sanity, explainable, explanation
from ecg_keras.data import ptbxl

from conftest import run_cli

STEPS = 16  # enough for the bounds below; the command's default is 32


def real_test_records(real_ptbxl_dir, metadata, count):
    """The first ``count`` fold-10 records: float32 [count, 1000, 12] mV."""
    return explain_sanity.test_records(real_ptbxl_dir, metadata, count)


def completeness_error(model, ecg, attr):
    """Per class |sum(attr) - (logit(ecg) - logit(baseline))| / sum |attr|."""
    logits = attribution.record_logits(
        model, tf.constant(np.stack([ecg, attribution.baseline(ecg)]))
    )
    change = (logits[0] - logits[1]).numpy()
    return np.abs(attr.sum((1, 2)) - change) / np.abs(attr).sum((1, 2))


def test_sanity_checks_on_a_trained_model(trained_run, real_ptbxl_dir):
    model = explainable.load(trained_run[0])
    records = real_test_records(real_ptbxl_dir, model.metadata, 4)
    result = explain_sanity.measure(model, records, steps=STEPS)
    print(json.dumps(result, indent=1))
    assert set(result) == set(model.classes)
    for name, r in result.items():
        # Model randomization: the trained model's map shares little with a random model's.
        assert abs(r["spearman_signed"]) < 0.3, (name, r)
        assert r["spearman_abs"] < 0.6, (name, r)
    # Masking the top-attributed 10% lowers the class logit more than a random 10%, on average
    # over classes (single classes of a 4-epoch model on 4 records are too noisy to bound).
    top = np.mean([r["logit_drop_top"] for r in result.values()])
    rand = np.mean([r["logit_drop_random"] for r in result.values()])
    assert top > rand + 0.1, (top, rand)


def test_completeness_and_masses(trained_run, real_ptbxl_dir):
    model = explainable.load(trained_run[0])
    ecg = real_test_records(real_ptbxl_dir, model.metadata, 1)[0]
    attr = attribution.integrated_gradients(model, ecg, steps=STEPS)
    assert attr.shape == (len(model.classes), 1000, 12) and attr.dtype == np.float32
    assert np.isfinite(attr).all() and np.abs(attr).sum() > 0
    assert completeness_error(model, ecg, attr).max() < 0.15
    lead, time = attribution.lead_mass(attr[0]), attribution.time_mass(attr[0], 100)
    assert lead.shape == (12,) and time.shape == (20,)
    np.testing.assert_allclose([lead.sum(), time.sum()], 1.0, rtol=1e-9)


def test_one_dimensional_model(tiny_signal_run, real_ptbxl_dir):
    model = explainable.load(tiny_signal_run[0])
    assert not model.is_spectrogram and model.input_layer.name == "standardize"
    ecg = real_test_records(real_ptbxl_dir, model.metadata, 1)[0]
    attr = attribution.integrated_gradients(model, ecg, steps=STEPS)
    assert np.isfinite(attr).all() and np.abs(attr).sum() > 0
    assert completeness_error(model, ecg, attr).max() < 0.15
    random_attr = attribution.integrated_gradients(explainable.randomized(model), ecg, STEPS)
    rho = [attribution.spearman(attr[c], random_attr[c]) for c in range(len(attr))]
    assert max(abs(r) for r in rho) < 0.5, rho


def test_explain_command(trained_run, real_ptbxl_dir, tmp_path):
    record = ptbxl.record_path(real_ptbxl_dir, ptbxl.load_database(real_ptbxl_dir).iloc[0], 100)
    out = tmp_path / "out"
    result = run_cli(
        "explain", f"--model={trained_run[0]}", f"--record={record}", "--classes=NORM,MI",
        f"--output_dir={out}", "--steps=4",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    doc = json.loads((out / f"{record.name}.json").read_text())
    assert list(doc["classes"]) == ["NORM", "MI"] and set(doc["probabilities"]) >= {"NORM"}
    for name, block in doc["classes"].items():
        assert list(block["lead_mass"]) == list(ptbxl.LEADS)
        assert sum(block["lead_mass"].values()) == pytest.approx(1, abs=1e-4)
        assert len(block["time_mass"]) == 20 and block["time_bin_seconds"] == 0.5
        assert sum(block["time_mass"]) == pytest.approx(1, abs=1e-4)
        assert 0 <= block["window"]["index"] < 7
        png = out / block["png"]
        assert png.name == f"{record.name}_{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    missing = tmp_path / "nowhere" / "00001_lr"
    result = run_cli(
        "explain", f"--model={trained_run[0]}", f"--record={missing}", f"--output_dir={out}"
    )
    assert result.returncode == 1 and str(missing) in result.stderr, result.stderr


def test_unknown_class_and_bad_model_are_refused(trained_run, real_ptbxl_dir, tmp_path):
    record = str(
        ptbxl.record_path(real_ptbxl_dir, ptbxl.load_database(real_ptbxl_dir).iloc[0], 100)
    )
    config = explanation.ExplainConfig(
        str(trained_run[0]), str(tmp_path), records=(record,), classes=("AFIB",)
    )
    with pytest.raises(ValueError, match="AFIB"):
        explanation.explain(config)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        explanation.explain(explanation.ExplainConfig(str(tmp_path / "nowhere"), str(tmp_path),
                                                      records=(record,)))  # fmt: skip
    assert not list(tmp_path.glob("*.json"))
