"""ecg_keras.data.features: the spectrogram (magnitude, complex and relative input) against
scipy, shapes, eager == tf.data, augmentation."""

import dataclasses

import numpy as np
import pytest
import scipy.signal
import tensorflow as tf

from ecg_keras.config import FeatureConfig
from ecg_keras.data import features


def _scipy_stft(signal, config):
    """scipy's STFT of [samples, 12]: Hann window, no padding, scaled by 1/sum(window)
    ("spectrum" scaling); complex [12, bins, frames], bins up to ``max_frequency_hz``."""
    frame_length, frame_step, fft_length, num_bins = features.stft_sizes(config)
    _, _, z = scipy.signal.stft(
        signal.T,
        window="hann",
        nperseg=frame_length,
        noverlap=frame_length - frame_step,
        nfft=fft_length,
        boundary=None,
        padded=False,
        detrend=False,
    )
    return z[:, :num_bins]


def _scipy_reference(signal, config):
    """The same transform with scipy: log |STFT| + offset, [frames, bins, 12]."""
    return np.log(np.abs(_scipy_stft(signal, config)) + config.log_offset).transpose(2, 1, 0)


def _scipy_phase_reference(signal, config, relative: bool):
    """The complex (or relative) input with scipy: log |z|, then Re and Im of
    w * log1p(|w| / scale) / |w| (0 where |w| = 0), z the STFT scaled to mV and w = z, or with
    ``relative`` w = z * conj(z_II) / (|z_II| + complex_scale); each group lead-major:
    [frames, bins, 36]."""
    z = _scipy_stft(signal.astype(np.float64), config)  # [12, bins, frames]
    w = z
    if relative:
        ref = z[features.LEADS_INDEX_II]
        w = z * np.conj(ref) / (np.abs(ref) + config.complex_scale)
    size = np.abs(w)
    gain = np.log1p(size / config.complex_scale) / np.where(size > 0, size, 1)
    groups = [np.log(np.abs(z) + config.log_offset), w.real * gain, w.imag * gain]
    return np.concatenate(groups, axis=0).transpose(2, 1, 0)


@pytest.mark.parametrize("rate", [100, 500])
def test_complex_spectrogram_matches_scipy(rate):
    config = FeatureConfig(sampling_rate=rate, input="complex")
    signal = np.random.default_rng(rate).normal(0, 0.3, (rate * 10, 12)).astype(np.float32)
    ours = features.spectrogram(signal, config).numpy()
    assert ours.shape == (118, 26, 36) and ours.dtype == np.float32
    np.testing.assert_allclose(
        ours, _scipy_phase_reference(signal, config, relative=False), atol=1e-4
    )
    # The first 12 channels are the magnitude input itself.
    magnitude = features.spectrogram(signal, dataclasses.replace(config, input="magnitude"))
    np.testing.assert_allclose(ours[..., :12], magnitude.numpy(), atol=1e-6)


@pytest.mark.parametrize("rate", [100, 500])
def test_relative_channels_match_scipy_and_do_not_turn_with_a_delay(rate):
    config = FeatureConfig(sampling_rate=rate, input="relative")
    noise = np.random.default_rng(rate).normal(0, 0.3, (rate * 10, 12)).astype(np.float32)
    ours = features.spectrogram(noise, config).numpy()
    assert ours.shape == (118, 26, 36)
    np.testing.assert_allclose(
        ours, _scipy_phase_reference(noise, config, relative=True), atol=1e-4
    )
    # Sines at bin frequencies, each lead its own amplitude, phase and sign, delayed by one
    # sample (10 ms at 100 Hz): the complex channels turn by 2 pi f dt, the relative ones not.
    bin_hz = rate / features.stft_sizes(config)[2]
    rng = np.random.default_rng(1)
    amplitude, phase = rng.uniform(0.2, 1, 12) * rng.choice([-1, 1], 12), rng.uniform(0, 6, 12)
    bins = np.array([5, 12, 20])

    def sines(delay_seconds):
        t = np.arange(rate * 10)[:, None, None] / rate - delay_seconds
        waves = np.sin(2 * np.pi * bins * bin_hz * t + phase[None, :, None])
        return (amplitude[:, None] * waves).sum(-1).astype(np.float32)  # [samples, 12]

    late = 1 / 100
    complex_ = dataclasses.replace(config, input="complex")
    turned = features.spectrogram(sines(late), complex_) - features.spectrogram(sines(0), complex_)
    assert np.abs(turned.numpy()[..., 12:]).max() > 1  # the complex phase turns
    for input_ in ("relative", "relative_advance"):  # the advance: frame to frame, per lead
        other = dataclasses.replace(config, input=input_)
        still = features.spectrogram(sines(late), other) - features.spectrogram(sines(0), other)
        np.testing.assert_allclose(still.numpy()[:, bins], 0, atol=2e-3)
    # A lead's sign flips its own relative channels only; the whole ECG's sign changes nothing.
    spec = features.spectrogram(sines(0), config).numpy()
    flipped = sines(0) * np.where(np.arange(12) == 6, -1, 1).astype(np.float32)  # V1
    other = features.spectrogram(flipped, config).numpy()
    np.testing.assert_allclose(other[..., [18, 30]], -spec[..., [18, 30]], atol=1e-5)
    keep = [c for c in range(36) if c not in (18, 30)]
    np.testing.assert_allclose(other[..., keep], spec[..., keep], atol=1e-5)
    np.testing.assert_allclose(features.spectrogram(-sines(0), config), spec, atol=1e-5)


@pytest.mark.parametrize("rate", [100, 500])
def test_complex_channels_compress_the_magnitude_and_keep_the_sign(rate):
    config = FeatureConfig(sampling_rate=rate, input="complex")
    bin_hz = rate / features.stft_sizes(config)[2]
    t = np.arange(rate * 10) / rate
    amplitudes = np.linspace(0.02, 2.0, 12)  # 0.01 to 1 mV at the peak: both sides of the scale
    signal = (np.sin(2 * np.pi * 8 * bin_hz * t)[:, None] * amplitudes).astype(np.float32)
    spec = features.spectrogram(signal, config).numpy()
    # |compressed z| = log1p(|z| / complex_scale), and |z| = A / 2 at the sine's bin.
    length = np.hypot(spec[:, 8, 12:24], spec[:, 8, 24:])  # [frames, 12]
    expected = np.log1p(amplitudes / 2 / config.complex_scale)
    np.testing.assert_allclose(length, np.broadcast_to(expected, length.shape), rtol=1e-3)
    # A signal's sign flips the real and imaginary parts and leaves the magnitudes alone:
    # what the magnitude input cannot see (QRS polarity).
    flipped = features.spectrogram(-signal, config).numpy()
    np.testing.assert_array_equal(flipped[..., :12], spec[..., :12])
    np.testing.assert_array_equal(flipped[..., 12:], -spec[..., 12:])
    assert np.abs(spec[..., 12:]).max() > 1  # not trivially zero
    # A flat lead: |z| = 0 gives 0, not NaN.
    flat = features.spectrogram(np.zeros_like(signal), config).numpy()
    assert np.isfinite(flat).all() and not flat[..., 12:].any()


@pytest.mark.parametrize("rate", [100, 500])
def test_spectrogram_matches_scipy(rate):
    config = FeatureConfig(sampling_rate=rate)
    signal = np.random.default_rng(rate).normal(0, 0.3, (rate * 10, 12)).astype(np.float32)
    ours = features.spectrogram(signal, config).numpy()
    np.testing.assert_allclose(ours, _scipy_reference(signal, config), atol=1e-4)


@pytest.mark.parametrize("rate", [100, 500])
def test_documented_shapes(rate):
    config = FeatureConfig(sampling_rate=rate)
    assert features.spectrogram_shape(config, rate * 10) == (118, 26, 12)
    assert features.spectrogram_shape(config, int(rate * 2.5)) == (24, 26, 12)
    batch = features.spectrogram(tf.zeros([3, rate * 10, 12]), config)
    assert batch.shape == (3, 118, 26, 12) and batch.dtype == tf.float32
    complex_input = dataclasses.replace(config, input="complex")
    assert features.spectrogram_shape(complex_input, rate * 10) == (118, 26, 36)
    assert features.spectrogram_shape(complex_input, int(rate * 2.5)) == (24, 26, 36)
    windows = features.spectrogram(tf.zeros([2, 7, int(rate * 2.5), 12]), complex_input)
    assert windows.shape == (2, 7, 24, 26, 36) and windows.dtype == tf.float32


@pytest.mark.parametrize("rate", [100, 500])
def test_sine_peaks_in_its_bin_in_every_lead(rate):
    config = FeatureConfig(sampling_rate=rate)
    _, _, fft_length, _ = features.stft_sizes(config)
    bin_hz = rate / fft_length  # 1.5625 Hz
    t = np.arange(rate * 10) / rate
    amplitudes = np.linspace(0.2, 2.0, 12)
    signal = (np.sin(2 * np.pi * 8 * bin_hz * t)[:, None] * amplitudes).astype(np.float32)
    spec = features.spectrogram(signal, config).numpy()  # [frames, bins, 12]
    assert (spec.mean(0).argmax(0) == 8).all()
    # Scaled by 1/sum(window): a sine of amplitude A peaks at A / 2 in every lead.
    np.testing.assert_allclose(np.exp(spec[:, 8]).mean(0), amplitudes / 2 + 1e-3, rtol=1e-3)


@pytest.mark.parametrize("input_", ["magnitude", "complex", "relative", "relative_advance"])
def test_eager_and_tf_data_agree(input_):
    config = FeatureConfig(input=input_)
    signals = np.random.default_rng(1).normal(0, 0.3, (4, 1000, 12)).astype(np.float32)
    seed = tf.constant([3, 4], tf.int64)

    def fn(x):
        augmented = features.augment_signal(x, config, seed)
        spec = features.spectrogram(augmented, config)
        return spec, features.spec_augment(spec, config, seed)

    eager = fn(signals)
    piped = next(iter(tf.data.Dataset.from_tensors(signals).map(fn)))
    graph = tf.function(fn)(signals)
    for a, b, c in zip(eager, piped, graph, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
        np.testing.assert_array_equal(a.numpy(), c.numpy())


def test_random_crop_takes_a_contiguous_window_per_example():
    signal = tf.tile(tf.range(1000, dtype=tf.float32)[None, :, None], [8, 1, 12])
    crops = features.random_crop(signal, 250, tf.constant([0, 1])).numpy()
    assert crops.shape == (8, 250, 12)
    starts = crops[:, 0, 0]
    np.testing.assert_array_equal(crops[:, :, 0], starts[:, None] + np.arange(250))
    assert len(set(starts)) > 1 and starts.min() >= 0 and starts.max() <= 750
    single = features.random_crop(signal[0], 250, tf.constant([0, 1]))
    assert single.shape == (250, 12)


def test_gain_and_noise_stay_in_their_ranges():
    ones = tf.ones([64, 250, 12])
    gained = features.random_gain(ones, 1.2, tf.constant([5, 6])).numpy()[:, 0, 0]
    assert gained.min() >= 1 / 1.2 - 1e-6 and gained.max() <= 1.2 + 1e-6 and gained.std() > 0.02
    noisy = features.add_noise(tf.zeros([64, 250, 12]), 0.01, tf.constant([7, 8])).numpy()
    assert abs(noisy.std() - 0.01) < 5e-4


def test_spec_augment_masks_bands_and_follows_the_seed():
    config = FeatureConfig(time_masks=1, freq_masks=1, time_mask_seconds=0.8, freq_mask_hz=10)
    spec = tf.ones([16, 24, 33, 12])
    out = features.spec_augment(spec, config, tf.constant([1, 2])).numpy()
    again = features.spec_augment(spec, config, tf.constant([1, 2])).numpy()
    other = features.spec_augment(spec, config, tf.constant([2, 2])).numpy()
    np.testing.assert_array_equal(out, again)
    assert not np.array_equal(out, other)
    assert set(np.unique(out)) <= {0.0, 1.0} and (out == 0).any()
    zero_frames = (out == 0).all(axis=(2, 3)).sum(1)  # whole frames masked, per example
    zero_bins = (out == 0).all(axis=(1, 3)).sum(1)
    assert zero_frames.max() <= 10 and zero_bins.max() <= 6  # 0.8 s / 80 ms, 10 Hz / 1.5625
    assert len({tuple(row) for row in (out[:, :, :, 0] == 0).reshape(16, -1)}) > 1
    single = features.spec_augment(spec[0], config, tf.constant([1, 2]))
    assert single.shape == (24, 33, 12)
    # The complex input's 36 channels: one band masks magnitude and phase alike.
    wide = features.spec_augment(tf.ones([16, 24, 26, 36]), config, tf.constant([1, 2])).numpy()
    assert (wide == 0).any() and (wide == wide[..., :1]).all()


def test_sliding_windows_and_normalize():
    signal = tf.reshape(tf.range(1000 * 12, dtype=tf.float32), [1000, 12])
    windows = features.sliding_windows(signal, 250, 125)
    assert windows.shape == (7, 250, 12)
    np.testing.assert_array_equal(windows[1, 0].numpy(), signal[125].numpy())
    spec = tf.fill([5, 33, 12], 3.0)
    out = features.normalize(spec, tf.fill([33, 12], 1.0), tf.fill([33, 12], 2.0))
    np.testing.assert_allclose(out.numpy(), 1.0)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"fft_seconds": 0.32}, "fft_seconds"),
        ({"crop_seconds": 12.0}, "crop_seconds"),
        ({"sampling_rate": 250}, "sampling_rate"),
        ({"hop_seconds": 0.0}, "hop_seconds"),
        ({"input": "phase"}, "--input=phase: must be one of magnitude, complex"),
        ({"complex_scale": 0.0}, "--complex_scale"),
    ],
)
def test_config_rejects_bad_values(change, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(FeatureConfig(), **change)
