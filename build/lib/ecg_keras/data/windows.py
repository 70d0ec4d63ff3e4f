"""How a record is cut for a model, and how the windows' answers become one.

    windows = Windows.of(config)            # 7 windows of 2.5 s at a 1.25 s stride (100 Hz)
    p = aggregate(window_probabilities, "max")

The PTB-XL benchmark scores a record by the max (or mean) of the model's sigmoid outputs over
2.5 s windows at a 1.25 s stride. ``evaluate`` (through ``tf.data``), the export signature,
``explain`` and ``predict`` all cut and aggregate through this module, so a window is defined
once.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ecg_keras.data import ptbxl

AGGREGATES = ("max", "mean")


@dataclasses.dataclass(frozen=True)
class Windows:
    """How one record is cut for the model: ``count`` windows of ``length`` samples,
    ``stride`` apart, in a record of ``record_samples`` (10 s at the model's rate)."""

    record_samples: int
    length: int
    stride: int
    count: int

    @classmethod
    def of(cls, config) -> Windows:
        """The evaluation windows of a ``TrainConfig`` (its ``features``)."""
        f = config.features
        record = f.samples(ptbxl.RECORD_SECONDS)
        length = f.input_samples
        stride = f.samples(f.window_stride_seconds) if f.crop_seconds else record
        return cls(record, length, stride, 1 + (record - length) // stride)

    @classmethod
    def from_metadata(cls, meta: dict) -> Windows:
        """The windows an export's ``metadata.json`` describes."""
        w, rate = meta["windows"], meta["sampling_rate"]
        length, stride = round(w["seconds"] * rate), round(w["stride_seconds"] * rate)
        return cls(meta["input_samples"], length, stride, w["count"])


def aggregate(window_probabilities: np.ndarray, how: str) -> np.ndarray:
    """float [records, windows, classes] -> [records, classes]: max or mean over windows."""
    if how not in AGGREGATES:
        raise ValueError(f"unknown aggregate {how!r}; known: {AGGREGATES}")
    return window_probabilities.max(1) if how == "max" else window_probabilities.mean(1)


def cut(ecg, windows: Windows):
    """TensorFlow: float32 [batch, record_samples, 12] -> [batch * count, length, 12], the
    windows of each record in order (one window, the whole record, when ``count`` is 1)."""
    import tensorflow as tf

    from ecg_keras.data import features

    if windows.count > 1:
        pieces = features.sliding_windows(ecg, windows.length, windows.stride)
    else:
        pieces = ecg[:, tf.newaxis]  # [batch, 1, record_samples, 12]
    return tf.reshape(pieces, [-1, windows.length, ptbxl.NUM_LEADS])


def record_logits(window_logits, how: str):
    """TensorFlow: float32 [batch, windows, classes] -> the record's logit [batch, classes]:
    the max of the logits for ``max`` (logit(max sigmoid) = max logit, exactly), the logit of
    the windows' mean sigmoid for ``mean`` (clipped to float32's open interval)."""
    import tensorflow as tf

    if how == "max":
        return tf.reduce_max(window_logits, axis=1)
    p = tf.clip_by_value(tf.reduce_mean(tf.sigmoid(window_logits), axis=1), 1e-7, 1 - 1e-7)
    return tf.math.log(p) - tf.math.log1p(-p)
