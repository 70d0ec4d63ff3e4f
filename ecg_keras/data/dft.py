"""The STFT as one strided convolution with a fixed DFT basis, for TFLite.

``tf.signal.stft`` becomes TFLite ``RFFT2D`` + ``COMPLEX_ABS`` / ``REAL`` / ``IMAG``, which exist
in float only, so a TFLite model built on ``features.spectrogram`` can never be all-integer.
Audio models that ship as TFLite (YAMNet's ``features_tflite.py``, Magenta's TFLite
workarounds, Kapre's ``STFTTflite``) replace the FFT by a product with a constant DFT matrix.
Here the framing is folded in too: one ``Conv2D`` over [samples, leads] with a kernel of
``frame_length`` x 1 taps, stride ``frame_step`` along time, whose ``2 * bins`` output channels
are the windowed cosines and sines. That is TFLite's ``CONV_2D``, which has int8 kernels and
runs on the delegates (XNNPACK, NNAPI, GPU) like the network's own convolutions.

Only the kept bins (up to ``max_frequency_hz``) are in the basis, so nothing above them is
computed and there is no slice of a complex tensor. The cost is a dense product per frame
(64 taps x 52 outputs at 100 Hz, 320 x 52 at 500 Hz) instead of an FFT: 1 M multiply-adds
per 2.5 s window of 12 leads at 100 Hz.

    spec = spectrogram(signal, config)  # == features.spectrogram(signal, config) to 1e-4
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from ecg_keras.config import FeatureConfig
from ecg_keras.data import features
from ecg_keras.data.ptbxl import NUM_LEADS

# Op names that TFLite keeps in its tensor names, so that ``deploy.lite`` can find these two
# ops and keep them in float in the int8 mode (an int8 input would be 8 bits of the raw ECG).
MEAN_NAME, CONV_NAME = "dft_mean", "dft_stft"


def dft_kernel(config: FeatureConfig) -> np.ndarray:
    """The STFT's basis as a Conv2D kernel: float32 [frame_length, 1, 1, 2 * bins].

    Output channel ``k`` < bins is ``w[n] cos(2 pi k n / fft_length) / sum(w)``, channel
    ``bins + k`` is ``-w[n] sin(...) / sum(w)``: the real and imaginary parts of bin ``k`` of
    ``rfft(w * frame, fft_length) / sum(w)``, w the periodic Hann window of
    ``tf.signal.stft``. Taps past ``frame_length`` would multiply the FFT's zero padding, so
    they are left out. Computed in float64 and rounded once, so the basis itself adds no
    error beyond float32's last bit.
    """
    frame_length, _, fft_length, num_bins = features.stft_sizes(config)
    n = np.arange(frame_length)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / frame_length)  # periodic Hann
    angle = 2 * np.pi * np.outer(n, np.arange(num_bins)) / fft_length  # [taps, bins]
    basis = np.concatenate([np.cos(angle), -np.sin(angle)], axis=1)  # [taps, 2 * bins]
    basis *= (window / window.sum())[:, None]
    return basis.astype(np.float32).reshape(frame_length, 1, 1, 2 * num_bins)


def stft_parts(signal: tf.Tensor, config: FeatureConfig) -> tuple[tf.Tensor, tf.Tensor]:
    """Real and imaginary parts of the STFT in mV (already divided by the window's sum).

    Args:
      signal: float32 [batch, samples, 12], mV.
      config: the STFT settings (``features.stft_sizes``).

    Returns:
      (real, imag), each float32 [batch, frames, 12, bins]: frame ``t`` covers samples
      ``[t * hop, t * hop + window)``, no padding, as ``features.spectrogram``.
    """
    frame_step = features.stft_sizes(config)[1]
    kernel = dft_kernel(config)
    # Each lead's mean is taken out before the product and its exact contribution (mean x the
    # sum of each basis column) added back: a sum of 64-320 products rounds relative to the
    # largest term, and a baseline offset of a few mV would otherwise swamp bins of 1e-3 mV
    # (a 3 mV offset at 500 Hz: 1.4e-4 from a float64 STFT uncentred, 8e-6 centred; the FFT's
    # own error there is 2e-5).
    mean = tf.reduce_mean(signal, axis=1, keepdims=True, name=MEAN_NAME)[..., tf.newaxis]
    image = signal[..., tf.newaxis] - mean  # [batch, samples, 12, 1]; mean [batch, 1, 12, 1]
    both = tf.nn.conv2d(image, kernel, [1, frame_step, 1, 1], "VALID", name=CONV_NAME)
    # Summed in float64: a float32 sum of a column that should be 0 leaves ~5e-8, x 3 mV.
    column_sums = kernel.astype(np.float64).sum(axis=(0, 1, 2)).astype(np.float32)
    both += mean * column_sums  # [batch, frames, 12, 2 * bins]
    real, imag = tf.split(both, 2, axis=-1)  # [batch, frames, 12, bins] each
    return real, imag


def spectrogram(signal: tf.Tensor, config: FeatureConfig) -> tf.Tensor:
    """``features.spectrogram`` computed with ``stft_parts`` instead of ``tf.signal.stft``.

    Args:
      signal: float32 [samples, 12], [batch, samples, 12] or [..., samples, 12], mV; the
        samples must be static (the convolution's output size is baked into the graph).
      config: as ``features.spectrogram`` (magnitude or complex input).

    Returns:
      float32 [(...,) frames, bins, channels]: the same channels as ``features.spectrogram``
      (to ~1e-5: a sum of products instead of an FFT rounds differently).
    """
    signal = tf.convert_to_tensor(signal, tf.float32)
    samples = signal.shape[-2]
    if samples is None or signal.shape[-1] != NUM_LEADS:
        raise ValueError(f"dft.spectrogram needs static [..., samples, 12], got {signal.shape}")
    static = features.spectrogram_shape(config, samples)  # (frames, bins, channels)
    outer = tf.shape(signal)[:-2]
    flat = tf.reshape(signal, [-1, samples, NUM_LEADS])  # [batch, samples, 12]
    real, imag = stft_parts(flat, config)
    # |z| as sqrt(re * re + im * im): COMPLEX_ABS and SQUARE have no int8 kernel, MUL/ADD/SQRT do.
    magnitude = tf.sqrt(real * real + imag * imag)
    groups = features.channel_groups(magnitude, real, imag, config, lead_axis=-2, frame_axis=-3)
    stacked = tf.concat(groups, axis=-2)  # [batch, frames, channels, bins], group-major
    spec = tf.transpose(stacked, [0, 1, 3, 2])  # [batch, frames, bins, channels]
    if signal.shape.rank == 3:
        return tf.reshape(spec, [-1, *static])  # static frames/bins/channels for the converter
    return tf.reshape(spec, tf.concat([outer, static], 0))
