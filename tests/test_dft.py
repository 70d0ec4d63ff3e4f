"""ecg_keras.data.dft: the STFT as a Conv2D with a fixed DFT basis equals features.spectrogram
(magnitude and complex input, 100 and 500 Hz, one signal and batches), and SpectrogramLayer's
stft="matmul" option round-trips through model.keras."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from ecg_keras import models
from ecg_keras.config import FeatureConfig
from ecg_keras.data import dft, features, ptbxl


def _signals(rate, root):
    """Noise with a 3 mV baseline offset (the hardest case for a sum of products: bins of
    1e-3 mV next to a large DC), a flat lead, and a real 10 s record at ``rate``."""
    rng = np.random.default_rng(rate)
    noisy = rng.normal(0, 0.3, (rate * 10, 12)) + rng.uniform(-3, 3, 12)
    noisy[:, 5] = 0.0  # |z| = 0: both must give log(offset) and 0, not NaN
    suffix = "lr" if rate == 100 else "hr"
    real = ptbxl.read_signal(root / f"records{rate}/00000/00065_{suffix}", rate)  # ecg_id 65
    return [noisy.astype(np.float32), real.astype(np.float32)]


@pytest.mark.parametrize("input_", ["magnitude", "complex", "relative", "relative_advance"])
@pytest.mark.parametrize("rate", [100, 500])
def test_matmul_spectrogram_equals_the_fft_one(rate, input_, real_ptbxl_dir):
    config = FeatureConfig(sampling_rate=rate, input=input_)
    channels = {"magnitude": 12, "relative_advance": 60}.get(input_, 36)
    for signal in _signals(rate, real_ptbxl_dir):
        fft = features.spectrogram(signal, config).numpy()
        matmul = dft.spectrogram(signal, config).numpy()
        assert matmul.shape == fft.shape == (118, 26, channels) and matmul.dtype == np.float32
        np.testing.assert_allclose(matmul, fft, atol=1e-4, rtol=0)
    # Batches of 2.5 s windows, and the endpoint's [batch, windows, samples, 12].
    batch = np.random.default_rng(1).normal(0, 0.5, (3, int(rate * 2.5), 12)).astype(np.float32)
    matmul = dft.spectrogram(batch, config)
    assert matmul.shape == (3, 24, 26, channels)
    np.testing.assert_allclose(matmul, features.spectrogram(batch, config), atol=1e-4, rtol=0)
    windows = batch.reshape(1, 3, -1, 12)
    np.testing.assert_allclose(dft.spectrogram(windows, config)[0], matmul, atol=1e-6, rtol=0)


def test_kernel_is_the_windowed_rfft_of_each_tap():
    config = FeatureConfig()  # 64-sample window and FFT, 26 bins kept
    kernel = dft.dft_kernel(config)
    assert kernel.shape == (64, 1, 1, 52) and kernel.dtype == np.float32
    window = np.hanning(65)[:64]  # periodic Hann
    expected = np.fft.rfft(np.diag(window), 64, axis=0)[:26].T / window.sum()  # [taps, bins]
    np.testing.assert_allclose(kernel[:, 0, 0, :26], expected.real, atol=1e-7)
    np.testing.assert_allclose(kernel[:, 0, 0, 26:], expected.imag, atol=1e-7)
    # A longer FFT than the window (zero padding): finer bins, the same taps.
    padded = dataclasses.replace(config, fft_seconds=1.28)
    assert dft.dft_kernel(padded).shape == (64, 1, 1, 2 * features.stft_sizes(padded)[3])


def test_matmul_needs_static_samples():
    with pytest.raises(ValueError, match="static"):
        tf.function(
            lambda x: dft.spectrogram(x, FeatureConfig()),
            input_signature=[tf.TensorSpec([None, None, 12])],
        ).get_concrete_function()


def test_spectrogram_layer_matmul_option_round_trips(tmp_path):
    config = FeatureConfig(input="complex")
    shape = features.spectrogram_shape(config, config.input_samples)  # (24, 26, 36)
    network = models.get("vgg_tiny", shape, 5)
    mean = np.random.default_rng(0).normal(0, 1, shape[1:]).astype(np.float32)
    std = np.full(shape[1:], 2.0, np.float32)
    fft = models.build_raw_model(network, config, mean, std)
    matmul = models.build_raw_model(network, config, mean, std, stft="matmul")
    ecg = np.random.default_rng(2).normal(0, 0.5, (2, config.input_samples, 12)).astype("float32")
    np.testing.assert_allclose(np.asarray(matmul(ecg)), np.asarray(fft(ecg)), atol=1e-4)

    matmul.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert loaded.get_layer("stft").stft == "matmul"
    np.testing.assert_array_equal(np.asarray(loaded(ecg)), np.asarray(matmul(ecg)))
    # A config saved before the option existed loads as the FFT one.
    layer_config = fft.get_layer("stft").get_config()
    assert layer_config.pop("stft") == "fft"
    assert models.SpectrogramLayer.from_config(layer_config).stft == "fft"
    with pytest.raises(ValueError, match="stft='rfft'"):
        models.SpectrogramLayer(config, stft="rfft")
