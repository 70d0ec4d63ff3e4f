"""The one TFRecord schema of prepared data (PTB-XL, Challenge-layout folders), used both to
write and to parse examples.

An example holds one ECG: the signal as its stored 16-bit ADC samples, raw little-endian
int16 bytes (decoding bytes is several times faster than parsing a 12,000-long list; int16 is
half the size of float32 mV), with each lead's gain and baseline (``data/adc.py``); the record's
metadata; and the multi-hot labels of every task, so one prepared copy serves every task. A
record with no class in a task keeps an all-zero label vector and ``has_label/<task> == 0``.
``parse_example`` gives the signal back as float32 mV, bit for bit what ``ptbxl.read_signal``
returns.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
import tensorflow as tf

from ecg_keras.data import ptbxl
from ecg_keras.data.manifest import SCHEMA_VERSION  # noqa: F401  (the schema's version)

AGE_MISSING = -1.0
# What an int16 signal needs to become mV; parsed whenever ``signal`` is, even when a caller
# asks for a subset of the schema without them.
GAIN, BASELINE = "signal_gain", "signal_baseline"


@dataclasses.dataclass(frozen=True)
class Field:
    """One feature: ``kind`` is int64, float32 or int16 (a signal: int16 bytes, parsed to
    float32 mV with ``GAIN`` and ``BASELINE``); ``shape`` is the parsed shape."""

    kind: str
    shape: tuple[int, ...] = ()


_SIGNAL_PARTS = {
    GAIN: Field("float32", (ptbxl.NUM_LEADS,)),
    BASELINE: Field("int64", (ptbxl.NUM_LEADS,)),
}


def schema(sampling_rate: int, num_classes: Mapping[str, int]) -> dict[str, Field]:
    """The feature schema of one prepared dataset.

    Args:
      sampling_rate: 100 or 500 (Hz); fixes the signal length.
      num_classes: task -> number of classes (from the manifest or ``ptbxl.load_tasks``).

    Returns:
      feature name -> Field. ``signal`` is int16 [sampling_rate * 10, 12] when written and
      parses to float32 mV; ``signal_gain`` float32 [12] (adu/mV), ``signal_baseline`` int64
      [12] (adu).
    """
    fields = {
        "signal": Field("int16", (sampling_rate * ptbxl.RECORD_SECONDS, ptbxl.NUM_LEADS)),
        **_SIGNAL_PARTS,
        "ecg_id": Field("int64"),
        "patient_id": Field("int64"),
        "strat_fold": Field("int64"),
        "age": Field("float32"),  # AGE_MISSING when unknown
        "sex": Field("int64"),  # PTB-XL coding: 0 male, 1 female
        "sampling_rate": Field("int64"),
    }
    for task, n in num_classes.items():
        fields[f"labels/{task}"] = Field("int64", (n,))
        fields[f"has_label/{task}"] = Field("int64")
    return fields


def make_example(values: Mapping[str, object], fields: Mapping[str, Field]) -> bytes:
    """Serializes one record; ``values`` must hold every field of the schema.

    ``signal`` is an int16 array of the field's shape (``adc.Adc.samples``), with its
    ``signal_gain`` and ``signal_baseline``; other values are scalars or 1-D.
    """
    feature = {}
    for name, field in fields.items():
        value = np.asarray(values[name])
        if value.shape != field.shape:
            raise ValueError(f"feature {name}: shape {value.shape}, schema says {field.shape}")
        if field.kind == "int16":
            # float mV would be truncated silently by a cast: insist on the stored integers.
            if value.dtype != np.int16:
                raise ValueError(
                    f"feature {name}: dtype {value.dtype}; the schema stores the int16 ADC "
                    "samples (adc.read_adc), not mV"
                )
            data = value.astype("<i2").tobytes()
            feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[data]))
        elif field.kind == "int64":
            feature[name] = tf.train.Feature(
                int64_list=tf.train.Int64List(value=value.reshape(-1).tolist())
            )
        else:
            feature[name] = tf.train.Feature(
                float_list=tf.train.FloatList(value=value.reshape(-1).tolist())
            )
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _parse_spec(fields: Mapping[str, Field]) -> dict[str, tf.io.FixedLenFeature]:
    dtypes = {"int16": tf.string, "int64": tf.int64, "float32": tf.float32}
    return {
        name: tf.io.FixedLenFeature([] if f.kind == "int16" else f.shape, dtypes[f.kind])
        for name, f in fields.items()
    }


def _to_mv(samples: tf.Tensor, gain: tf.Tensor, baseline: tf.Tensor) -> tf.Tensor:
    """``adc.to_mv`` in TensorFlow: int16 [..., n, 12], float32 and int64 [..., 12] -> float32
    mV [..., n, 12]; the same float32 operations, so the results are the same bits."""
    shifted = tf.cast(samples, tf.float32) - tf.cast(baseline, tf.float32)[..., None, :]
    return shifted / gain[..., None, :]


def parse_example(serialized: tf.Tensor, fields: Mapping[str, Field]) -> dict[str, tf.Tensor]:
    """Parses a scalar or [batch] string tensor of serialized examples.

    Returns:
      feature name -> tensor; ``signal`` is float32 [(batch,) samples, 12], labels int64.
    """
    wanted = dict(fields)
    if any(f.kind == "int16" for f in fields.values()):
        wanted = {**_SIGNAL_PARTS, **wanted}
    if serialized.shape.rank == 0:
        parsed = tf.io.parse_single_example(serialized, _parse_spec(wanted))
    else:
        parsed = tf.io.parse_example(serialized, _parse_spec(wanted))
    for name, field in fields.items():
        if field.kind == "int16":
            raw = tf.io.decode_raw(parsed[name], tf.int16, little_endian=True)
            batch = tf.shape(raw)[:-1]
            # A static shape lets Keras and the TFLite converter see the lead channels.
            shaped = tf.reshape(raw, tf.concat([batch, field.shape], 0))
            shaped = tf.ensure_shape(shaped, raw.shape[:-1].concatenate(field.shape))
            parsed[name] = _to_mv(shaped, parsed[GAIN], parsed[BASELINE])
    return {name: parsed[name] for name in fields}


def shard_name(fold: int, index: int, count: int, compression: str) -> str:
    """``fold03-00001-of-00004.tfrecord[.gz]``; ``index`` counts from 0 like TF's shards."""
    suffix = ".tfrecord.gz" if compression == "GZIP" else ".tfrecord"
    return f"fold{fold:02d}-{index:05d}-of-{count:05d}{suffix}"


def record_values(row, ecg_id: int, tasks, rate: int) -> dict:
    """The example values of one record (its ``ptbxl_database.csv`` row), less its signal:
    metadata, and every task's multi-hot ``labels/TASK`` (``ptbxl.LabelTasks.multi_hot``) with
    ``has_label/TASK``."""
    values = {
        "ecg_id": ecg_id,
        "patient_id": int(row.patient_id),
        "strat_fold": int(row.strat_fold),
        "age": AGE_MISSING if np.isnan(row.age) else float(row.age),
        "sex": int(row.sex),
        "sampling_rate": rate,
    }
    for task, vec in tasks.multi_hot(row.scp_codes).items():
        values[f"labels/{task}"] = vec
        values[f"has_label/{task}"] = int(vec.any())
    return values
