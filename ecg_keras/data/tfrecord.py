"""The one TFRecord schema of prepared PTB-XL, used both to write and to parse examples.

An example holds one ECG: the signal as raw little-endian float32 bytes (decoding bytes is
several times faster than parsing a 12,000-long float list), the record's metadata, and the
multi-hot labels of every task, so one prepared copy serves every task. A record with no
class in a task keeps an all-zero label vector and ``has_label/<task> == 0``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
import tensorflow as tf

from ecg_keras.data import ptbxl

SCHEMA_VERSION = 1
AGE_MISSING = -1.0


@dataclasses.dataclass(frozen=True)
class Field:
    """One feature: ``kind`` is int64, float32 or bytes; ``shape`` is the parsed shape."""

    kind: str
    shape: tuple[int, ...] = ()


def schema(sampling_rate: int, num_classes: Mapping[str, int]) -> dict[str, Field]:
    """The feature schema of one prepared dataset.

    Args:
      sampling_rate: 100 or 500 (Hz); fixes the signal length.
      num_classes: task -> number of classes (from the manifest or ``ptbxl.load_tasks``).

    Returns:
      feature name -> Field. ``signal`` parses to float32 [sampling_rate * 10, 12].
    """
    fields = {
        "signal": Field("bytes", (sampling_rate * ptbxl.RECORD_SECONDS, ptbxl.NUM_LEADS)),
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

    ``signal`` is a float32 array of the field's shape; other values are scalars or 1-D.
    """
    feature = {}
    for name, field in fields.items():
        value = np.asarray(values[name])
        if field.kind != "bytes" and value.shape != field.shape:
            raise ValueError(f"feature {name}: shape {value.shape}, schema says {field.shape}")
        if field.kind == "bytes":
            array = value.astype("<f4")
            if array.shape != field.shape:
                raise ValueError(f"feature {name}: shape {array.shape}, schema says {field.shape}")
            feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[array.tobytes()]))
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
    dtypes = {"bytes": tf.string, "int64": tf.int64, "float32": tf.float32}
    return {
        name: tf.io.FixedLenFeature([] if f.kind == "bytes" else f.shape, dtypes[f.kind])
        for name, f in fields.items()
    }


def parse_example(serialized: tf.Tensor, fields: Mapping[str, Field]) -> dict[str, tf.Tensor]:
    """Parses a scalar or [batch] string tensor of serialized examples.

    Returns:
      feature name -> tensor; ``signal`` is float32 [(batch,) samples, 12], labels int64.
    """
    if serialized.shape.rank == 0:
        parsed = tf.io.parse_single_example(serialized, _parse_spec(fields))
    else:
        parsed = tf.io.parse_example(serialized, _parse_spec(fields))
    for name, field in fields.items():
        if field.kind == "bytes":
            raw = tf.io.decode_raw(parsed[name], tf.float32, little_endian=True)
            batch = tf.shape(raw)[:-1]
            # A static shape lets Keras and the TFLite converter see the lead channels.
            shaped = tf.reshape(raw, tf.concat([batch, field.shape], 0))
            parsed[name] = tf.ensure_shape(shaped, raw.shape[:-1].concatenate(field.shape))
    return parsed


def shard_name(fold: int, index: int, count: int, compression: str) -> str:
    """``fold03-00001-of-00004.tfrecord[.gz]``; ``index`` counts from 0 like TF's shards."""
    suffix = ".tfrecord.gz" if compression == "GZIP" else ".tfrecord"
    return f"fold{fold:02d}-{index:05d}-of-{count:05d}{suffix}"


def record_values(row, ecg_id: int, tasks, rate: int) -> tuple[dict, dict[str, np.ndarray]]:
    """The example values of one record (its ``ptbxl_database.csv`` row), less its signal,
    and its task -> multi-hot labels (``ptbxl.Tasks.multi_hot``)."""
    labels = tasks.multi_hot(row.scp_codes)
    values = {
        "ecg_id": ecg_id,
        "patient_id": int(row.patient_id),
        "strat_fold": int(row.strat_fold),
        "age": AGE_MISSING if np.isnan(row.age) else float(row.age),
        "sex": int(row.sex),
        "sampling_rate": rate,
    }
    for task, vec in labels.items():
        values[f"labels/{task}"] = vec
        values[f"has_label/{task}"] = int(vec.any())
    return values, labels
