"""Runs are recognized by their resolved config: older run.json files read, and match."""

import dataclasses
import json
from pathlib import Path

import pytest

from ecg_keras.config import FeatureConfig, TrainConfig, config_from_dict, run_identity
from ecg_keras.data.windows import Windows


def _as_saved(config: TrainConfig) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(config)))  # what run.json holds


def test_an_older_run_json_without_newer_fields_is_the_same_run():
    config = TrainConfig(data_dir="tfr", epochs=7, features=FeatureConfig(sampling_rate=100))
    saved = _as_saved(config)
    # A run written before these fields existed: they were at what are now the defaults.
    for name in ("features_in", "jit_compile", "precision"):
        del saved[name]
    del saved["features"]["delay_seconds"]
    saved["retired_option"] = 3  # a field since removed
    old = config_from_dict(saved)
    assert run_identity(old) == run_identity(config)
    # Not everything matches: a real change is a different run.
    assert run_identity(dataclasses.replace(old, epochs=8)) != run_identity(config)
    assert run_identity(dataclasses.replace(old, precision="auto")) != run_identity(config)


def test_identity_ignores_what_the_data_fills_in():
    config = TrainConfig(data_dir="tfr")
    prepared = dataclasses.replace(
        config, features=dataclasses.replace(config.features, sampling_rate=500)
    )
    assert run_identity(prepared) == run_identity(config)
    assert config_from_dict(_as_saved(prepared)) == prepared  # tuples come back as tuples
    with pytest.raises(ValueError, match="disjoint"):
        config_from_dict({**_as_saved(config), "val_folds": [8]})


ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "cfg", sorted(str(p.relative_to(ROOT)) for p in (ROOT / "configs").rglob("*.cfg"))
)
def test_every_config_file_parses_into_a_valid_config(cfg, parsed_flags, monkeypatch):
    from ecg_keras import config_flags, models

    monkeypatch.chdir(ROOT)  # configs name their parents relative to the repository root
    parsed_flags(f"--flagfile={cfg}")
    config = config_flags.config_from_flags()
    assert isinstance(config, TrainConfig)
    assert config.model in models.PRESETS, (cfg, config.model)


def test_the_main_config_is_the_two_stream_model_with_dense_mean_windows(parsed_flags, monkeypatch):
    """What the README says the main job runs: resnet1d_wang's protocol with the two-stream
    model, 31 averaged windows (25 samples apart: 1 modulo the 1D stride 4 and the hop 8)."""
    from ecg_keras import config_flags

    monkeypatch.chdir(ROOT)
    parsed_flags("--flagfile=configs/superdiagnostic.cfg")
    main = config_flags.config_from_flags()
    parsed_flags("--flagfile=configs/resnet1d_wang_superdiagnostic.cfg")
    benchmark = config_flags.config_from_flags()
    assert (main.model, main.features.input) == ("vgg_resnet1d", "relative")
    assert (main.epochs, main.batch_size, main.select) == (
        benchmark.epochs,
        benchmark.batch_size,
        "last",
    )
    assert (main.aggregate, main.validation_freq) == ("mean", 10)
    windows = Windows.of(main)
    hop = main.features.samples(main.features.hop_seconds)
    assert (windows.count, windows.stride) == (31, 25)
    assert windows.stride % 4 == 1 and windows.stride % hop == 1  # 4: resnet1d_wang's stride
