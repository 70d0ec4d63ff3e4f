"""--input=complex end to end: the flag and its config file, a tiny spectrogram run trained on
36 channels, its export through every artifact check (TFLite int8 included), the tuner's
--input_choices, and the refusal for a model on the raw signal."""

import dataclasses
import json
from pathlib import Path

import keras_tuner as kt
import numpy as np
import pytest

from ecg_keras import config_flags, tune
from ecg_keras.config import FeatureConfig, TrainConfig
from ecg_keras.deploy import exporting as export
from ecg_keras.deploy import serving
from ecg_keras.training import experiment as train
from ecg_keras.training import hypermodel, recipe
from ecg_keras.training.run import Run

from conftest import tiny_benchmark_split_tfrecords

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TFLITE = ["tflite_float32", "tflite_float16", "tflite_dynamic_int8", "tflite_int8"]


@pytest.fixture(scope="module")
def complex_run(tmp_path_factory):
    """``vgg_tiny`` on the complex input, 6 epochs on 50 tiny records (a few seconds).

    As ``tiny_signal_run`` in conftest.py: folds rewritten to ``(ecg_id - 1) // 5 + 1`` so that
    every fold holds one record of each code set and the benchmark split (1-8 / 9 / 10) has
    positives and negatives of every superclass. Returns (workdir, metrics.json content).
    """
    root = tmp_path_factory.mktemp("complex")
    config = TrainConfig(
        data_dir=str(tiny_benchmark_split_tfrecords(root)),
        model="vgg_tiny",
        epochs=6,
        batch_size=8,
        learning_rate=1e-2,
        features=FeatureConfig(input="complex"),
    )
    workdir = root / "run"
    text = config_flags.flags_text(config, str(workdir))
    return workdir, train.train_and_evaluate(config, workdir, flags_text=text)


def test_complex_run_trains_on_36_channels(complex_run):
    workdir, metrics = complex_run
    run = json.loads((workdir / "run.json").read_text())
    assert run["config"]["features"]["input"] == "complex"
    assert run["config"]["features"]["complex_scale"] == 0.01
    # Per (bin, channel) statistics: 26 bins x (12 log magnitudes, 12 real, 12 imaginary).
    mean, std = np.asarray(run["stats"]["mean"]), np.asarray(run["stats"]["std"])
    assert mean.shape == std.shape == (26, 36) and (std > 0).all()
    # Zero-mean sines of random phase: the real and imaginary parts average near 0.
    assert np.abs(mean[:, 12:]).max() < 0.5 < np.abs(mean[:, :12]).min()
    flags_cfg = (workdir / "flags.cfg").read_text()
    assert "--input=complex\n" in flags_cfg and "--complex_scale=0.01\n" in flags_cfg
    assert recipe.model_input_shape(Run.load(workdir).config) == (None, 26, 36)
    # Each superclass is a tone of its own frequency: chance is 0.5.
    assert metrics["test"]["macro_auc"] > 0.75 and metrics["val"]["macro_auc"] > 0.75


def test_complex_run_exports_and_passes_every_check(complex_run, tmp_path):
    workdir, metrics = complex_run
    output_dir = tmp_path / "saved_models" / "complex"
    result = export.export(
        export.ExportConfig(
            output_dir=str(output_dir), workdir=str(workdir), calibration_records=20
        )
    )
    artifacts = {a["name"]: a["check"] for a in result["artifacts"]}
    assert list(artifacts) == ["keras", "saved_model", *TFLITE]
    failed = {n: c.get("failures") for n, c in artifacts.items() if not c["passed"]}
    assert result["passed"] and not failed, failed
    for name in ("keras", "saved_model", "tflite_float32"):
        assert artifacts[name]["max_abs_diff"] <= 1e-4, name
    assert result["float_macro_auc"] == pytest.approx(metrics["test"]["macro_auc"])
    int8 = artifacts["tflite_int8"]
    print(
        f"int8: max |diff| {int8['max_abs_diff']:.4f}, p99 {int8['p99_abs_diff']:.4f}, "
        f"macro AUC {int8['macro_auc']:.4f} (float {result['float_macro_auc']:.4f})"
    )
    version_dir = output_dir / str(result["version"])
    meta = json.loads((version_dir / "assets.extra" / serving.METADATA).read_text())
    assert meta["features"]["input"] == "complex"


def test_signal_model_refuses_the_complex_input(tmp_path):
    config = TrainConfig(
        data_dir=str(tmp_path / "none"),
        model="resnet1d_tiny",
        features=FeatureConfig(input="complex"),
    )
    with pytest.raises(ValueError, match="--input=complex applies to spectrogram models"):
        Run.prepare(config)  # before it looks for the data


def test_config_file_is_the_vgg_config_with_complex_input(parsed_flags):
    parsed_flags(f"--flagfile={CONFIGS / 'vgg_complex_superdiagnostic.cfg'}")
    complex_config = config_flags.config_from_flags()
    parsed_flags(f"--flagfile={CONFIGS / 'vgg_superdiagnostic.cfg'}")
    magnitude_config = config_flags.config_from_flags()
    assert complex_config.features.input == "complex"
    assert magnitude_config.features.input == "magnitude"
    features = dataclasses.replace(complex_config.features, input="magnitude")
    assert dataclasses.replace(complex_config, features=features) == magnitude_config
    # A magnitude run's flags.cfg has no --input line: it stays the flags.cfg of runs made
    # before the flag existed, so train resumes them and compare reuses them.
    text = config_flags.flags_text(magnitude_config, "runs/x")
    assert "--input" not in text and "--complex_scale" not in text
    assert "--input=complex\n" in config_flags.flags_text(complex_config, "runs/x")


def test_tuner_searches_the_input_only_when_asked(parsed_flags, capsys):
    parsed_flags()
    assert tune.space_from_flags() == hypermodel.SearchSpace()  # input_choices: ()
    base = TrainConfig(features=FeatureConfig(input="complex"))
    hp = kt.HyperParameters()
    config = hypermodel.trial_config(base, hypermodel.SearchSpace(), hp)
    assert config.features.input == "complex" and "input" not in hp.values  # not searched
    parsed_flags("--input_choices=magnitude,complex")
    space = tune.space_from_flags()
    assert space.input_choices == ("magnitude", "complex")
    hp = kt.HyperParameters()
    hp.values["input"] = "complex"
    assert hypermodel.trial_config(TrainConfig(), space, hp).features.input == "complex"
    with pytest.raises(ValueError, match=r"--input_choices: unknown \['phase'\]"):
        hypermodel.SearchSpace(input_choices=("phase",)).check(FeatureConfig())
    parsed_flags("--input_choices=magnitude,complex", "--input=complex")
    with pytest.raises(SystemExit):
        tune.main([])
    assert "--input=complex is searched by the tuner" in capsys.readouterr().err
