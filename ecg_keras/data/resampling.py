"""Another sampling rate to the models' own: the polyphase resampling every reader shares.

``predict``, ``explain``, ``evaluate --external_dir`` (whole records at any rate) and
``prepare --input_format=challenge`` (records at 257-1000 Hz written at 100 or 500 Hz) resample
through ``resample_to_model``, so that a record reaches a model the same way whichever path
brought it. No TensorFlow here: ``prepare``'s reader processes import this module.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from ecg_keras.data import ptbxl

# One evaluation window (2.5 s, as in training crops): shorter records hold too few beats.
MIN_SECONDS = 2.5

# How resample_poly extends the record beyond its ends for its 0.1 s-long filter. Its default,
# zeros, bends the first and last samples of any record with a baseline offset. Max |error| in
# mV over the first / last 0.1 s (scipy 1.17, 500 -> 100 Hz):
#   synthetic 12-lead, 0.5-8 Hz sines + 2 mV offset + 0.1 mV/s slope, vs x[::5]:
#     constant (zeros) 0.919 / 0.334, line 0.050 / 0.009, edge 0.050 / 0.009,
#     reflect 0.101 / 0.018, smooth 0.0026 / 0.0018, antireflect 0.0020 / 0.0011
#     (the interior's error is 0.0014);
#   488 real PTB-XL 500 Hz records cropped to 1-9 s vs the full record resampled (the true
#   continuation), 99th percentile of the per-record max: constant 0.99 / 0.15,
#     line 0.28 / 0.054, reflect 0.48 / 0.11, smooth 0.14 / 0.044, antireflect 0.16 / 0.045;
#   the same records vs their own 100 Hz files, mean |error| over the first 10 samples:
#     constant 0.0149, line, edge, smooth, reflect and antireflect 0.0084 (the last 10
#     samples differ by 0.11 in every mode, x[::5] too: the 500 Hz files end on ~0.1 s held
#     flat, the 100 Hz files do not).
# antireflect (point reflection about the end sample) keeps the value and slope continuous
# and, unlike smooth's linear extrapolation of the last two samples, stays bounded by the
# record's own excursions near the end.
PADTYPE = "antireflect"


def resample_to_model(signal: np.ndarray, rate: float, target: int) -> np.ndarray:
    """float32 [samples, 12] at ``rate`` Hz -> float32 [samples', 12] at ``target`` Hz."""
    import scipy.signal

    if rate == target:
        return np.asarray(signal, np.float32)
    ratio = Fraction(target / rate).limit_denominator(1000)
    out = scipy.signal.resample_poly(
        signal, ratio.numerator, ratio.denominator, axis=0, padtype=PADTYPE
    )
    return out.astype(np.float32)


def fit(signal: np.ndarray, rate: float, target: int, samples: int) -> tuple[np.ndarray, list[str]]:
    """Resamples one record to ``target`` Hz and crops it to its first ``samples`` or repeats
    it from its start until ``samples`` (the models have only seen ECGs, never a flat pad).

    Args:
      signal: float32 [n, 12] mV at ``rate`` Hz.

    Returns:
      (float32 [samples, 12], notes saying what changed).

    Raises:
      ptbxl.PtbxlError: a record shorter than ``MIN_SECONDS``.
    """
    seconds = len(signal) / rate
    if seconds < MIN_SECONDS:
        raise ptbxl.PtbxlError(f"{seconds:.2f} s long; the model needs at least {MIN_SECONDS} s")
    notes = [f"resampled from {rate:g} Hz to {target} Hz"] if rate != target else []
    signal = resample_to_model(signal, rate, target)
    if len(signal) > samples:
        signal = signal[:samples]
        notes.append(f"cropped from {seconds:g} s to its first {samples / target:g} s")
    elif len(signal) < samples:
        signal = np.pad(signal, ((0, samples - len(signal)), (0, 0)), mode="wrap")
        notes.append(f"padded from {seconds:g} s to {samples / target:g} s by repeating it")
    return np.ascontiguousarray(signal, np.float32), notes
