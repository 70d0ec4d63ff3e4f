"""Random sub-sample delays: a training augmentation for timing that crops cannot vary.

A random crop shifts a record by whole samples (10 ms at 100 Hz). Two recordings of one ECG
can also differ by a fraction of a sample: measured on PTB-XL, PhysioNet's 100 Hz files lag
``scipy.signal.resample_poly`` of the 500 Hz originals by about 1.2 ms (``config.py``,
``delay_seconds``). The magnitude spectrogram barely notices; its phase channels
(``input="complex"``) do. ``random_delay`` shifts each record by its own random time, by a
linear phase ramp in the frequency domain (band-limited interpolation, exact for any delay).
Measured to leave the complex model's sensitivity to such shifts unchanged, so it is off by
default (``--delay_seconds``; ``config.py`` has the figures).

    delayed = random_delay(signal, 0.005, 100, seed)  # [batch, 1000, 12] -> same shape
"""

from __future__ import annotations

import math

import tensorflow as tf


def delay(signal: tf.Tensor, samples: tf.Tensor) -> tf.Tensor:
    """Each record delayed by its own (fractional) number of samples.

    Args:
      signal: float32 [batch, samples, 12].
      samples: float32 [batch]; positive values delay (the output at ``t`` is the input at
        ``t - samples``).

    Returns:
      float32 [batch, samples, 12]. The FFT shift is circular; to keep the jump between a
      record's last and first sample from ringing through it, the straight line between its
      ends is taken out before the shift and added back delayed (a line delays exactly).
    """
    x = tf.transpose(signal, [0, 2, 1])  # [batch, 12, n]
    n = tf.shape(x)[-1]
    t = tf.cast(tf.range(n), tf.float32)  # [n]
    first, last = x[..., :1], x[..., -1:]  # [batch, 12, 1]
    slope = (last - first) / tf.cast(n - 1, tf.float32)
    residual = x - (first + slope * t)  # 0 at both ends: continuous across the wrap
    spectrum = tf.signal.rfft(residual)  # [batch, 12, n // 2 + 1]
    cycles = tf.cast(tf.range(tf.shape(spectrum)[-1]), tf.float32) / tf.cast(n, tf.float32)
    phase = -2.0 * math.pi * cycles[tf.newaxis, :] * samples[:, tf.newaxis]  # [batch, bins]
    ramp = tf.complex(tf.cos(phase), tf.sin(phase))[:, tf.newaxis, :]  # [batch, 1, bins]
    shifted = tf.signal.irfft(spectrum * ramp, fft_length=[n])  # [batch, 12, n]
    line = first + slope * (t - samples[:, tf.newaxis, tf.newaxis])
    return tf.transpose(shifted + line, [0, 2, 1])


def random_delay(signal: tf.Tensor, max_seconds: float, sampling_rate: int, seed) -> tf.Tensor:
    """``delay`` by a time drawn uniformly from [-max_seconds, max_seconds] per record.

    Args:
      signal: float32 [batch, samples, 12] at ``sampling_rate`` Hz.
      seed: int32/int64 [2], for ``tf.random.stateless_uniform``.
    """
    limit = max_seconds * sampling_rate
    shift = tf.random.stateless_uniform([tf.shape(signal)[0]], seed, -limit, limit)
    return delay(signal, shift)
