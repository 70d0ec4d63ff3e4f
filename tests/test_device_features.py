"""Training-speed options: features computed in the model, dtype policies, sub-sample delays."""

from __future__ import annotations

import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from ecg_keras import config_flags, models
from ecg_keras.config import FeatureConfig, TrainConfig
from ecg_keras.data import delay, features
from ecg_keras.training import device_features

COMPLEX = FeatureConfig(input="complex")


def _run(config: TrainConfig, seed=0):
    """A stand-in for ``training.run.Run``: what ``training_model`` reads (config, stats)."""
    rng = np.random.default_rng(seed)
    bins, channels = features.spectrogram_shape(config.features, 250)[1:]
    mean = rng.normal(size=(bins, channels)).astype(np.float32)
    std = rng.uniform(0.5, 2.0, size=(bins, channels)).astype(np.float32)
    return types.SimpleNamespace(config=config, stats=(mean, std), classes=("a", "b", "c"))


def _network(run):
    bins, channels = features.spectrogram_shape(run.config.features, 250)[1:]
    return models.get("vgg_tiny", (None, bins, channels), 3)


def _ecg(n=4, seed=1):
    return np.random.default_rng(seed).normal(0, 0.5, (n, 250, 12)).astype(np.float32)


def test_training_model_computes_what_the_pipeline_feeds():
    run = _run(TrainConfig(features_in="model", features=COMPLEX))
    network = _network(run)
    trainer = device_features.training_model(network, run)
    assert trainer is not network and trainer.input_shape == (None, 250, 12)
    ecg = _ecg()
    mean, std = run.stats
    expected = network(features.normalize(features.spectrogram(ecg, COMPLEX), mean, std))
    np.testing.assert_allclose(trainer(ecg, training=False), expected, atol=1e-5)
    # SpecAugment acts in training only: the training output differs from inference.
    masked = trainer.get_layer("spec_augment")(trainer.get_layer("stft")(ecg), training=True)
    zeroed = np.mean(np.asarray(masked) == 0)
    assert 0.02 < zeroed < 0.9
    # The pipeline path leaves the network alone.
    assert device_features.training_model(network, _run(TrainConfig())) is network


def test_spec_augment_draws_new_masks_each_step_reproducibly():
    spec = tf.ones([2, 24, 26, 12])
    keras.utils.set_random_seed(3)
    layer = device_features.SpecAugment(FeatureConfig())
    first, second = layer(spec, training=True), layer(spec, training=True)
    assert not np.array_equal(first, second)
    keras.utils.set_random_seed(3)
    again = device_features.SpecAugment(FeatureConfig())(spec, training=True)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(layer(spec), spec)


def test_policy_auto_picks_the_machine_mixed_policy(monkeypatch):
    policy = device_features.policy
    assert policy(TrainConfig()) == "float32"
    assert policy(TrainConfig(mixed_precision=True)) == "mixed_float16"
    assert policy(TrainConfig(precision="mixed_bfloat16")) == "mixed_bfloat16"
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])
    monkeypatch.setattr(device_features, "_cpu_trusts_bfloat16", lambda: True)
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    assert policy(TrainConfig(precision="auto")) == "mixed_bfloat16"
    # Without oneDNN, bfloat16 is emulated (23x slower than float32 on an AMX Xeon).
    for off in ("0", "false", " False "):
        monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", off)
        assert policy(TrainConfig(precision="auto")) == "float32"
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "1")
    assert policy(TrainConfig(precision="auto")) == "mixed_bfloat16"
    monkeypatch.setattr(device_features, "_cpu_trusts_bfloat16", lambda: False)
    assert policy(TrainConfig(precision="auto")) == "float32"
    # AMX Xeons list both flags: bfloat16 turned NaN there, so auto trains float32.
    trusts = device_features.trusts_bfloat16
    assert trusts(["avx2", "avx512f", "avx512_bf16"])
    assert not trusts(["avx512f", "avx512_bf16", "amx_tile", "amx_bf16"])
    assert not trusts(["avx2", "fma"])
    with pytest.raises(ValueError, match="--precision=mixed_float16, not mixed_bfloat16"):
        TrainConfig(mixed_precision=True, precision="mixed_bfloat16")
    with pytest.raises(ValueError, match="multi_worker"):
        TrainConfig(strategy="multi_worker", features_in="model")


def test_network_trained_mixed_is_saved_in_float32(monkeypatch):
    run = _run(TrainConfig(model="vgg_tiny", precision="mixed_bfloat16"))
    monkeypatch.setattr("ecg_keras.training.recipe.build_model", _network)
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        network = _network(run)
        saved = device_features.float32_network(network, run)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    convs = [layer for layer in saved.layers if isinstance(layer, keras.layers.Conv2D)]
    assert convs and all(layer.compute_dtype == "float32" for layer in convs)
    assert network.layers[2].compute_dtype == "bfloat16"
    for a, b in zip(network.get_weights(), saved.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    spec = np.random.default_rng(0).normal(size=(2, 24, 26, 12)).astype(np.float32)
    np.testing.assert_allclose(saved(spec), network(spec), atol=0.05)


def test_delay_shifts_by_whole_and_fractional_samples():
    t = np.arange(1000) / 100.0
    wave = lambda s: np.sin(2 * np.pi * 3 * s) + 0.4 * np.cos(2 * np.pi * 11 * s)  # noqa: E731
    ecg = np.stack([wave(t) + 0.5 + 0.1 * t] * 12, -1)[None].astype(np.float32)
    shifted = delay.delay(ecg, tf.constant([2.0])).numpy()[0]
    np.testing.assert_allclose(shifted[10:-10], ecg[0, 8:-12], atol=1e-5)
    fractional = delay.delay(ecg, tf.constant([0.37])).numpy()[0]
    late = t - 0.0037
    expected = np.stack([wave(late) + 0.5 + 0.1 * late] * 12, -1)
    np.testing.assert_allclose(fractional[50:-50], expected[50:-50], atol=2e-3)
    # A 0.37-sample delay moves this signal by up to 0.1 mV: the check above can fail.
    assert np.abs(fractional - ecg[0]).max() > 0.05
    drawn = delay.random_delay(ecg, 0.005, 100, tf.constant([1, 2])).numpy()
    np.testing.assert_array_equal(drawn, delay.random_delay(ecg, 0.005, 100, [1, 2]).numpy())
    assert 0 < np.abs(drawn - ecg).max() < 0.2


def test_later_flags_stay_out_of_flagfiles_at_their_defaults():
    text = config_flags.flags_text(TrainConfig(), "runs/x")
    for name in config_flags.LATER_FLAGS:
        assert f"--{name}=" not in text
    config = TrainConfig(
        features_in="model",
        precision="auto",
        features=FeatureConfig(delay_seconds=0.005),
    )
    text = config_flags.flags_text(config, "runs/x")
    assert "--features_in=model" in text and "--precision=auto" in text
    assert "--delay_seconds=0.005" in text
