"""PTB-XL records as their stored 16-bit ADC samples plus per-lead gain and baseline.

PhysioNet stores PTB-XL in WFDB format 16 with a gain of 1000 adu/mV: every sample is an
int16, and mV = (sample - baseline) / gain. ``prepare`` writes those integers instead of float32
mV, which halves the TFRecords; ``tfrecord.parse_example`` turns them back into float32 mV with
``to_mv``'s arithmetic. ``read_adc`` checks, record by record, that this gives back exactly the
float32 mV that ``ptbxl.read_signal`` returns, so the smaller files lose nothing.

No TensorFlow here: ``prepare``'s reader processes import this module.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from ecg_keras.data import ptbxl

_INT16 = np.iinfo(np.int16)


@dataclasses.dataclass(frozen=True)
class Adc:
    """One record's stored samples, leads in ``ptbxl.LEADS`` order.

    samples: int16 [samples, 12]; gain: float32 [12] (adu per mV); baseline: int64 [12] (adu).
    """

    samples: np.ndarray
    gain: np.ndarray
    baseline: np.ndarray


def to_mv(samples, gain, baseline) -> np.ndarray:
    """float32 mV of int16 ``samples`` [..., 12] with ``gain`` and ``baseline`` [..., 12].

    The same float32 operations as ``tfrecord.parse_example`` (cast, subtract, divide), so that
    a check made here holds for the parsed TFRecords bit for bit. For PTB-XL's gain of 1000
    and baseline 0 this equals wfdb's float64 (sample - baseline) / gain rounded to float32 for
    every int16 value.
    """
    gain, baseline = np.asarray(gain, np.float32), np.asarray(baseline)
    shifted = np.asarray(samples).astype(np.float32) - baseline.astype(np.float32)[..., None, :]
    return shifted / gain[..., None, :]


def read_adc(path: str | os.PathLike, sampling_rate: int, ecg_id: int | None = None) -> Adc:
    """Reads one PTB-XL record's stored integers, checked to decode to ``read_signal``'s mV.

    Args:
      path: record path without extension (``.../00001_lr``).
      sampling_rate: expected sampling rate in Hz (100 or 500).
      ecg_id: only used in error messages.

    Raises:
      ptbxl.PtbxlError: everything ``read_signal`` rejects, and records that int16 samples
        with a float32 gain cannot hold exactly (another WFDB format with wider samples, or a
        gain that float32 arithmetic does not reproduce); the message names the record.
    """
    record, order, who = ptbxl.checked_record(path, sampling_rate, ecg_id, physical=False)
    digital = np.asarray(record.d_signal)[:, order]
    # wfdb's own conversion (float64, NaN where a sample is the format's "missing" code),
    # rounded to float32 exactly as ``read_signal`` returns it: the reference to match.
    expected = record.dac()[:, order].astype(np.float32)
    if not np.isfinite(expected).all():
        raise ptbxl.PtbxlError(f"{who}: signal has NaN or infinite values")
    low, high = int(digital.min()), int(digital.max())
    if low < _INT16.min or high > _INT16.max:
        raise ptbxl.PtbxlError(
            f"{who}: stored samples span {low}..{high} (WFDB format {record.fmt[0]}), beyond "
            "16 bits; the int16 TFRecords cannot hold this record"
        )
    gain = np.asarray(record.adc_gain, np.float64)[order]
    baseline = np.asarray(record.baseline, np.int64)[order]
    adc = Adc(digital.astype(np.int16), gain.astype(np.float32), baseline)
    decoded = to_mv(adc.samples, adc.gain, adc.baseline)
    if not np.array_equal(decoded, expected):
        differ = int(np.sum(decoded != expected))
        raise ptbxl.PtbxlError(
            f"{who}: gains {sorted(set(gain.tolist()))} adu/mV, baselines "
            f"{sorted(set(baseline.tolist()))}: int16 samples decoded in float32 differ from "
            f"wfdb's mV in {differ} samples; the int16 TFRecords cannot hold this record exactly"
        )
    return adc


def read_adc_job(job: tuple[str, int, int]) -> tuple[int, Adc]:
    """``read_adc`` for a process pool: ``(path, sampling_rate, ecg_id)`` -> ``(ecg_id, Adc)``."""
    path, sampling_rate, ecg_id = job
    return ecg_id, read_adc(path, sampling_rate, ecg_id)
