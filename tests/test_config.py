"""Runs are recognized by their resolved config: older run.json files read, and match."""

import dataclasses
import json

import pytest

from ecg_keras.config import FeatureConfig, TrainConfig, config_from_dict, run_identity


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
