"""Pure tensor functions from a raw ECG to the model's input, and training augmentation.

No Python state and no ``.numpy()``: the same code runs eagerly, inside ``tf.data`` and inside
an exported SavedModel or TFLite model. Randomness is stateless (``tf.random.stateless_*``)
with an explicit ``seed`` int32 [2], so a ``tf.data`` pipeline is reproducible even with
parallel calls.

Shapes: a signal is float32 [samples, 12] or [batch, samples, 12], in mV; a spectrogram is
float32 [frames, bins, channels] or [batch, frames, bins, channels], channels = 12 (one per
lead, ``input="magnitude"``) or 36 (``input="complex"``; see ``spectrogram``).
"""

from __future__ import annotations

import tensorflow as tf

from ecg_keras.config import FeatureConfig
from ecg_keras.data.ptbxl import NUM_LEADS

# Added to |z| (mV) before dividing by it, so that a bin with |z| = 0 (a flat lead) gives 0,
# not NaN. A billionth of PTB-XL's 1e-3 mV step: lost in float32 rounding for any |z| > 1e-5.
COMPLEX_EPSILON = 1e-12
# input="relative": the lead whose phase every lead's is taken relative to. Lead II: the
# rhythm strip lead, whose P, QRS and T are rarely all near zero at once.
LEADS_INDEX_II = 1


def stft_sizes(config: FeatureConfig) -> tuple[int, int, int, int]:
    """(frame_length, frame_step, fft_length, num_bins) in samples / bins at the config's rate.

    Bins above ``max_frequency_hz`` are dropped, so 100 Hz and 500 Hz give the same axis.
    """
    frame_length = config.samples(config.window_seconds)
    frame_step = max(config.samples(config.hop_seconds), 1)
    fft_length = config.samples(config.fft_seconds)
    bin_hz = config.sampling_rate / fft_length
    num_bins = min(fft_length // 2, int(config.max_frequency_hz / bin_hz + 1e-6)) + 1
    return frame_length, frame_step, fft_length, num_bins


def num_channels(config: FeatureConfig) -> int:
    """Channels of ``spectrogram``: 12 (``input="magnitude"``) or 36 (``"complex"``,
    ``"relative"``)."""
    groups = {"magnitude": 1, "complex": 3, "relative": 3, "relative_advance": 5}
    return NUM_LEADS * groups[config.input]


def spectrogram_shape(config: FeatureConfig, num_samples: int) -> tuple[int, int, int]:
    """(frames, bins, channels) of ``spectrogram`` for a signal of ``num_samples`` samples."""
    frame_length, frame_step, _, num_bins = stft_sizes(config)
    if num_samples < frame_length:
        raise ValueError(f"{num_samples} samples is shorter than one window ({frame_length})")
    return 1 + (num_samples - frame_length) // frame_step, num_bins, num_channels(config)


def channel_groups(
    magnitude, real, imag, config: FeatureConfig, lead_axis: int, frame_axis: int
) -> list[tf.Tensor]:
    """The spectrogram's channel groups from the STFT in mV (any layout).

    Args:
      magnitude: float32 |z|, z = STFT / sum(window); real, imag: float32 Re z and Im z of the
        same shape (None for ``input="magnitude"``, which does not use them).
      config: ``log_offset``, ``input``, ``complex_scale``.
      lead_axis, frame_axis: the axes of the 12 leads and of the frames.

    Returns:
      [log(|z| + log_offset)], and with ``input="complex"`` also Re and Im of
      z * log1p(|z| / complex_scale) / |z|; with ``input="relative"`` the same of
      w = z * conj(z_II) / (|z_II| + complex_scale): each lead's STFT with the phase of lead
      II's taken out; ``"relative_advance"`` adds the same of z * conj(z_prev) / (|z_prev| +
      complex_scale), z_prev the lead's previous frame (the first frame: itself), which keeps
      each lead's own phase progression. A delay of the whole ECG by t turns every z by
      exp(-2 pi i f t) and neither w (the complex channels turn by 144 degrees at 40 Hz for
      10 ms); a lead's sign still flips its own w; where the reference has no energy
      (<< complex_scale) w fades to 0 instead of carrying a random phase. 1, 3 or 5 float32
      tensors shaped like ``magnitude``. Shared by ``spectrogram`` and ``dft.spectrogram`` so
      that the two cannot drift apart.
    """
    groups = [tf.math.log(magnitude + config.log_offset)]
    if config.input == "complex":
        groups += _compressed(magnitude, real, imag, config)
    if config.input in ("relative", "relative_advance"):
        ref_re = tf.gather(real, [LEADS_INDEX_II], axis=lead_axis)
        ref_im = tf.gather(imag, [LEADS_INDEX_II], axis=lead_axis)
        groups += _compressed(*_times_conj(real, imag, ref_re, ref_im, config), config)
    if config.input == "relative_advance":
        frames = tf.shape(real)[frame_axis]
        previous = tf.concat([[0], tf.range(frames - 1)], 0)
        prev_re = tf.gather(real, previous, axis=frame_axis)
        prev_im = tf.gather(imag, previous, axis=frame_axis)
        groups += _compressed(*_times_conj(real, imag, prev_re, prev_im, config), config)
    return groups


def _times_conj(real, imag, ref_re, ref_im, config: FeatureConfig):
    """(|w|, Re w, Im w) of w = z * conj(ref) / (|ref| + complex_scale)."""
    # Divided, not times a reciprocal: with the reciprocal, tf.function and eager results
    # differed by up to 4.8e-7 (measured; grappler rewrites it in graphs only), and the
    # two must agree bitwise.
    denominator = tf.sqrt(ref_re * ref_re + ref_im * ref_im) + config.complex_scale
    w_re = (real * ref_re + imag * ref_im) / denominator
    w_im = (imag * ref_re - real * ref_im) / denominator
    return tf.sqrt(w_re * w_re + w_im * w_im), w_re, w_im


def _compressed(magnitude, real, imag, config: FeatureConfig) -> list[tf.Tensor]:
    """Re and Im of z * log1p(|z| / complex_scale) / |z|."""
    # Times the reciprocal, not divided by the scale: grappler rewrites a division by a
    # constant that way inside tf.function only, and eager and graph must agree bitwise.
    relative = magnitude * (1.0 / config.complex_scale)
    gain = tf.math.log1p(relative) / (magnitude + COMPLEX_EPSILON)
    return [real * gain, imag * gain]


def spectrogram(signal: tf.Tensor, config: FeatureConfig) -> tf.Tensor:
    """Log-magnitude STFT of every lead, and with ``input="complex"`` its compressed phase.

    Args:
      signal: float32 [samples, 12] or [batch, samples, 12], mV, at ``config.sampling_rate``.
      config: STFT window, hop, FFT length (seconds), maximum frequency, log offset, input.

    Returns:
      float32 [frames, bins, channels] (or with the batch dimension first), Hann window
      (periodic), no padding: frame ``t`` covers samples ``[t * hop, t * hop + window)``. With
      z = STFT / sum(window) (mV: a sine of amplitude A peaks at A / 2), channel ``c`` is
      ``log(|z| + log_offset)`` of lead ``c`` for c < 12. With ``input="complex"`` channels
      12-23 and 24-35 are ``Re`` and ``Im`` of z * log1p(|z| / complex_scale) / |z| of lead
      ``c % 12`` (lead-major within each group of 12): a signal's sign flips them and leaves
      channels 0-11 unchanged.
    """
    frame_length, frame_step, fft_length, num_bins = stft_sizes(config)
    signal = tf.convert_to_tensor(signal, tf.float32)
    rank = signal.shape.rank
    leads_first = tf.linalg.matrix_transpose(signal)  # [..., 12, samples]
    stft = tf.signal.stft(
        leads_first,
        frame_length,
        frame_step,
        fft_length,
        window_fn=tf.signal.hann_window,
        pad_end=False,
    )  # [..., 12, frames, fft_length // 2 + 1] complex64
    window_sum = tf.reduce_sum(tf.signal.hann_window(frame_length))
    # abs, real and imag before the slice: TFLite has no StridedSlice for complex tensors.
    magnitude = tf.abs(stft)[..., :num_bins] / window_sum  # [..., 12, frames, bins], mV
    real = imag = None
    if config.input != "magnitude":
        real, imag = (
            part[..., :num_bins] / window_sum for part in (tf.math.real(stft), tf.math.imag(stft))
        )
    channels = channel_groups(magnitude, real, imag, config, lead_axis=-3, frame_axis=-2)
    stacked = tf.concat(channels, axis=-3)  # [..., channels, frames, bins], group-major
    perm = list(range(rank - 2)) + [rank - 1, rank, rank - 2]
    spec = tf.transpose(stacked, perm)  # [..., frames, bins, channels]
    # The converter needs static frames/bins/channels (MEASURED.md): restate them after the
    # transposes, keeping the batch dimension dynamic.
    if signal.shape[-2] is not None:
        static = spectrogram_shape(config, signal.shape[-2])
        if rank == 2:
            spec = tf.reshape(spec, static)
        elif rank == 3:
            spec = tf.reshape(spec, [-1, *static])
        else:
            spec = tf.reshape(spec, tf.concat([tf.shape(spec)[:-3], static], 0))
    return spec


def normalize(spec: tf.Tensor, mean: tf.Tensor, std: tf.Tensor) -> tf.Tensor:
    """``(spec - mean) / std`` with statistics float32 [bins, channels] from training folds
    only (float32 [] for a signal)."""
    return (spec - mean) / std


def sliding_windows(signal: tf.Tensor, length: int, stride: int) -> tf.Tensor:
    """float32 [..., samples, 12] -> [..., windows, length, 12]: windows at ``stride``."""
    return tf.signal.frame(signal, length, stride, axis=-2)


def _batched(fn):
    """Lets a function of a batch [batch, samples, 12] also take one signal [samples, 12]."""

    def wrapper(signal, *args):
        signal = tf.convert_to_tensor(signal, tf.float32)
        if signal.shape.rank == 2:
            return fn(signal[tf.newaxis], *args)[0]
        return fn(signal, *args)

    wrapper.__doc__ = fn.__doc__
    return wrapper


@_batched
def random_crop(signal: tf.Tensor, length: int, seed: tf.Tensor) -> tf.Tensor:
    """A random window of ``length`` samples of each signal: [(batch,) samples, 12] ->
    [(batch,) length, 12]."""
    batch, samples = tf.shape(signal)[0], tf.shape(signal)[1]
    unit = tf.random.stateless_uniform([batch], seed)
    start = tf.cast(unit * tf.cast(samples - length + 1, tf.float32), tf.int32)  # [batch]
    index = start[:, tf.newaxis] + tf.range(length)[tf.newaxis, :]  # [batch, length]
    return tf.gather(signal, index, batch_dims=1)


@_batched
def random_gain(signal: tf.Tensor, max_scale: float, seed: tf.Tensor) -> tf.Tensor:
    """Multiplies each signal by a gain drawn log-uniformly from [1/max_scale, max_scale]."""
    log_max = tf.math.log(tf.constant(max_scale, tf.float32))
    gain = tf.exp(tf.random.stateless_uniform([tf.shape(signal)[0]], seed, -log_max, log_max))
    return signal * gain[:, tf.newaxis, tf.newaxis]


def add_noise(signal: tf.Tensor, std: float, seed: tf.Tensor) -> tf.Tensor:
    """Adds white Gaussian noise of ``std`` mV."""
    return signal + tf.random.stateless_normal(tf.shape(signal), seed, stddev=std)


def _mask(spec: tf.Tensor, axis: int, max_width: int, seed: tf.Tensor) -> tf.Tensor:
    """Zeroes one random band of width [0, max_width] along ``axis`` (1 or 2) of each example
    of ``spec`` float32 [batch, frames, bins, channels], the same band in every channel."""
    batch, size = tf.shape(spec)[0], tf.shape(spec)[axis]
    width_seed, start_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    width = tf.random.stateless_uniform([batch], width_seed, 0, max_width + 1, dtype=tf.int32)
    width = tf.minimum(width, size)
    # Per-example ranges, so draw in [0, 1) and scale: stateless ints take one scalar maxval.
    unit = tf.random.stateless_uniform([batch], start_seed)
    start = tf.cast(unit * tf.cast(size - width + 1, tf.float32), tf.int32)
    index = tf.range(size)[tf.newaxis, :]  # [1, size]
    keep = tf.logical_or(index < start[:, None], index >= (start + width)[:, None])
    shape = [batch, size, 1, 1] if axis == 1 else [batch, 1, size, 1]
    return spec * tf.reshape(tf.cast(keep, spec.dtype), shape)


def spec_augment(spec: tf.Tensor, config: FeatureConfig, seed: tf.Tensor) -> tf.Tensor:
    """SpecAugment: ``time_masks`` time bands and ``freq_masks`` frequency bands set to 0.

    Args:
      spec: normalized float32 [frames, bins, channels] or [batch, frames, bins, channels]; 0
        is the training mean after normalization. Each example gets its own masks, applied to
        all its channels alike (a masked band hides magnitude and phase together).
      config: mask counts and widest masks (seconds, Hz).
      seed: int32/int64 [2].
    """
    single = spec.shape.rank == 3
    if single:
        spec = spec[tf.newaxis]
    _, frame_step, fft_length, _ = stft_sizes(config)
    max_frames = int(config.samples(config.time_mask_seconds) / frame_step)
    max_bins = int(config.freq_mask_hz * fft_length / config.sampling_rate)
    num = config.time_masks + config.freq_masks
    seeds = tf.random.experimental.stateless_split(seed, max(num, 1))
    for i in range(config.time_masks):
        spec = _mask(spec, 1, max_frames, seeds[i])
    for i in range(config.freq_masks):
        spec = _mask(spec, 2, max_bins, seeds[config.time_masks + i])
    return spec[0] if single else spec


def augment_signal(signal: tf.Tensor, config: FeatureConfig, seed: tf.Tensor) -> tf.Tensor:
    """Training perturbations: signal float32 [(batch,) samples, 12] ->
    [(batch,) input_samples, 12], each example with its own crop, gain and noise."""
    crop_seed, gain_seed, noise_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
    if config.crop_seconds:
        signal = random_crop(signal, config.input_samples, crop_seed)
    if config.amplitude_scale > 1:
        signal = random_gain(signal, config.amplitude_scale, gain_seed)
    if config.noise_std > 0:
        signal = add_noise(signal, config.noise_std, noise_seed)
    return signal
