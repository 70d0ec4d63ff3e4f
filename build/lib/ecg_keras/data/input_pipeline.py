"""``make_dataset``: prepared TFRecords -> batches of (model input, multi-hot labels).

The chain, and why it is in this order:
  shard files -> interleave reads -> parse -> drop records without a label for the task
  -> [cache: parsed clean signals, before anything random] -> [training: shuffle records]
  -> [evaluation with crops: sliding windows per record] -> batch
  -> [training: sub-sample delay, crop, gain, noise] -> spectrogram -> normalization
  -> [training: SpecAugment] -> prefetch.
For a model on the raw signal (``config.representation == "signal"``) the spectrogram and
SpecAugment steps drop out: the crop itself, standardized, is the input; with ``raw=True``
(``--features_in=model``) the unnormalized crop, and the training model computes the rest
(``training.device_features``). Crops, gain, noise and windows are the same for all.
Parsing, augmentation and the STFT all work on whole batches: one big op is far cheaper than
many small ones (per-record maps made this pipeline ~2x slower). Random draws are still per
example, from one stateless seed per batch.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from ecg_keras.config import FeatureConfig
from ecg_keras.data import delay, features, tfrecord
from ecg_keras.data import manifest as manifest_lib


class DataError(ValueError):
    """A dataset that cannot be read as asked; the message names the file, fold or task."""


@functools.cache
def _verify_shard(path: str, size: int, sha256: str, mtime_ns: int) -> None:
    """Checks one shard against the manifest once per process (mtime_ns keys the cache)."""
    del mtime_ns
    if manifest_lib.sha256_file(Path(path)) != sha256:
        raise DataError(f"{path}: sha256 differs from manifest.json; the shard is corrupt")


def shard_files(data_dir, folds: Sequence[int]) -> tuple[dict, list[str]]:
    """The manifest and the shard paths of ``folds``, checked against the manifest (size every
    time, sha256 once per process and shard version).

    Raises:
      DataError: a missing fold, or a shard that is missing, truncated or corrupt.
    """
    manifest = manifest_lib.load(data_dir)
    files = []
    for fold in folds:
        if manifest["folds"].get(str(fold), 0) == 0:
            raise DataError(f"{data_dir}: fold {fold} has no records (folds: {manifest['folds']})")
        for shard in manifest["shards"]:
            if shard["fold"] != fold:
                continue
            path = Path(data_dir) / shard["file"]
            if not path.is_file():
                raise DataError(f"{path}: shard listed in manifest.json is missing")
            stat = path.stat()
            if stat.st_size != shard["bytes"]:
                raise DataError(
                    f"{path}: {stat.st_size} bytes, manifest.json says {shard['bytes']}; "
                    "the shard is truncated or was rewritten: prepare the data again"
                )
            _verify_shard(str(path), shard["bytes"], shard["sha256"], stat.st_mtime_ns)
            files.append(str(path))
    return manifest, files


def feature_stats(
    data_dir, folds: Sequence[int], config: FeatureConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Normalization statistics of the model input over every record of ``folds``.

    Call it with training folds only. Full 10 s records, no augmentation. For a spectrogram,
    per (bin, channel): each lead's log magnitude and, with ``config.input == "complex"``,
    its compressed real and imaginary parts (``features.spectrogram``'s channel order); for
    the signal, one mean and std over every sample of every lead, like the PTB-XL benchmark's
    ``StandardScaler`` on the flattened training set (per-lead scaling would erase the leads'
    relative amplitudes, which diagnoses such as voltage criteria for hypertrophy compare).

    Returns:
      mean, std: float32 [bins, channels] (spectrogram: 12 or 36 channels) or float32 []
      (signal).
    """
    full = FeatureConfig(**{**config.__dict__, "crop_seconds": 0.0})
    ds = make_dataset(data_dir, folds, None, full, training=False, batch_size=256)
    # [batch, frames, bins, channels] summed over (batch, frames); [batch, samples, 12] over all.
    axes = None if config.representation == "signal" else (0, 1)
    total = count = squares = 0.0
    for x, _ in ds:
        x = x.numpy().astype(np.float64)
        total = total + x.sum(axes)
        squares = squares + np.square(x).sum(axes)
        count += x.size // np.size(total)
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean**2, 1e-12))
    return mean.astype(np.float32), std.astype(np.float32)


@dataclasses.dataclass(frozen=True)
class Shards:
    """The checked shard files of some folds and how to read them: the one TFRecord reader
    that training, evaluation, ``visualize``, ``paired`` and ``export_check`` share."""

    manifest: dict
    files: list[str]
    fields: dict  # tfrecord.schema of this dataset: name -> Field
    compression: str  # TFRecordDataset's compression_type: "GZIP" or ""

    def records(self, files=None) -> tf.data.Dataset:
        """Serialized examples (scalar strings) of ``files`` (default: all), in file order."""
        return tf.data.TFRecordDataset(self.files if files is None else files, self.compression)


def open_shards(data_dir, folds: Sequence[int]) -> Shards:
    """``shard_files`` plus the schema and compression from the manifest."""
    manifest, files = shard_files(data_dir, folds)
    num_classes = {t: len(v["classes"]) for t, v in manifest["tasks"].items()}
    fields = tfrecord.schema(manifest["sampling_rate"], num_classes)
    return Shards(manifest, files, fields, "GZIP" if manifest["compression"] == "GZIP" else "")


def read_labelled(data_dir, folds: Sequence[int], task: str, names) -> dict[str, np.ndarray]:
    """Every record of ``folds`` labelled for ``task`` (as ``make_dataset`` keeps them),
    eagerly: feature name -> numpy array over records, sorted by ecg_id (``ecg_id`` is
    always included; e.g. ``signal`` float32 [n, samples, 12], ``labels/TASK`` int64
    [n, classes]).
    """
    shards = open_shards(data_dir, folds)
    if task not in shards.manifest["tasks"]:
        raise DataError(f"unknown task {task!r}; {data_dir} has {list(shards.manifest['tasks'])}")
    wanted = {"ecg_id", f"has_label/{task}", *names}
    fields = {name: shards.fields[name] for name in wanted}
    parts = {name: [] for name in wanted}
    for batch in shards.records().batch(256):
        ex = tfrecord.parse_example(batch, fields)
        keep = ex[f"has_label/{task}"].numpy() > 0
        for name in wanted:
            parts[name].append(ex[name].numpy()[keep])
    out = {name: np.concatenate(p) for name, p in parts.items()}
    order = np.argsort(out["ecg_id"], kind="stable")
    return {name: value[order] for name, value in out.items()}


def make_dataset(
    data_dir: str | os.PathLike,
    folds: Sequence[int],
    task: str | None,
    config: FeatureConfig,
    training: bool,
    *,
    batch_size: int = 64,
    stats: tuple[np.ndarray, np.ndarray] | None = None,
    seed: int = 0,
    cache: bool = False,
    deterministic: bool = False,
    with_ids: bool = False,
    raw: bool = False,
    input_context: tf.distribute.InputContext | None = None,
) -> tf.data.Dataset:
    """Batches of model inputs from the prepared TFRecords in ``data_dir``.

    Args:
      data_dir: a folder written by ``ecg_keras.prepare`` (with ``manifest.json``).
      folds: ``strat_fold`` values to read, e.g. ``range(1, 9)``.
      task: label task (``superdiagnostic`` ...); records without a label for it are dropped.
        ``None`` keeps every record and yields all-zero labels of width 0.
      config: features; its sampling rate must match the data.
      training: shuffle, random crops, gain, noise and (spectrograms) SpecAugment. Without
        it, crops become sliding windows (``window_stride_seconds``) and nothing is random.
      batch_size: global batch size (divided by ``input_context`` replicas when given).
      stats: (mean, std) from ``feature_stats`` on training folds (float32 [bins, channels],
        or [] for the signal); None leaves the input unnormalized.
      seed: seeds shuffling and augmentation; the same seed gives the same batches.
      cache: keep parsed signals in memory after the first epoch (small datasets).
      deterministic: keep element order fixed even with parallel reads (for tests).
      with_ids: also yield ecg_id int64 [batch].
      raw: yield the signal in mV, unnormalized (augmented when training), not the input.
      input_context: from ``distribute_datasets_from_function``: this pipeline's share of
        the data, whole files when every pipeline gets at least one, every n-th record
        otherwise. Sharded here, with tf.distribute's auto-sharding off: its FILE policy
        cannot shard the seed stream zipped in below. Shards' sha256 are checked once.

    Returns:
      A dataset of (x, labels[, ecg_id]); labels float32 [batch, classes]. x is, for
      ``config.representation`` "spectrogram", float32 [batch, frames, bins, channels], or
      [batch, windows, frames, bins, channels] when evaluating with crops (channels 12, or 36
      with ``config.input == "complex"``); for "signal", float32
      [batch, samples, 12], or [batch, windows, samples, 12]. Windows add exactly one axis
      after the batch, whatever the representation.
    """
    shards = open_shards(data_dir, folds)
    manifest = shards.manifest
    if config.sampling_rate != manifest["sampling_rate"]:
        raise DataError(
            f"{data_dir} holds {manifest['sampling_rate']} Hz records but the features are "
            f"set for --sampling_rate={config.sampling_rate}"
        )
    if task is not None and task not in manifest["tasks"]:
        raise DataError(f"unknown task {task!r}; {data_dir} has {sorted(manifest['tasks'])}")
    if input_context is not None:
        batch_size = input_context.get_per_replica_batch_size(batch_size)
    ds = _records(shards, task, training, seed, deterministic, input_context)
    if cache:
        ds = ds.cache()
    if training:
        ds = ds.shuffle(4096, seed=seed, reshuffle_each_iteration=True)
    elif config.crop_seconds:
        length, stride = config.input_samples, config.samples(config.window_stride_seconds)
        ds = ds.map(lambda signal, *rest: (features.sliding_windows(signal, length, stride), *rest))
    ds = _model_inputs(ds.batch(batch_size), config, training, stats, seed, deterministic, raw)
    if not with_ids:
        ds = ds.map(lambda x, labels, ecg_id: (x, labels))
    options = tf.data.Options()
    options.deterministic = deterministic
    # Sharded in _records when asked; otherwise a strategy that shards on its own must split
    # records (DATA): FILE cannot see through the zip with the seed stream.
    policy = tf.data.experimental.AutoShardPolicy
    sharded = input_context is not None
    options.experimental_distribute.auto_shard_policy = policy.OFF if sharded else policy.DATA
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def _records(shards: Shards, task, training, seed, deterministic, input_context):
    """(signal float32 [samples, 12], labels float32 [classes], ecg_id int64) per record
    labelled for ``task``, this pipeline's share under ``input_context``."""
    auto, files = tf.data.AUTOTUNE, shards.files
    ds = tf.data.Dataset.from_tensor_slices(files)
    # Under distribute_datasets_from_function: shard by file when every pipeline gets one,
    # otherwise every pipeline reads all files and keeps every n-th record.
    pipelines, index = 1, 0
    if input_context is not None:
        pipelines, index = input_context.num_input_pipelines, input_context.input_pipeline_id
    shard_records = pipelines > 1 and len(files) < pipelines
    if pipelines > 1 and not shard_records:
        ds = ds.shard(pipelines, index)
    if training:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    ds = ds.interleave(
        shards.records,
        cycle_length=min(len(files), 8),
        num_parallel_calls=auto,
        deterministic=deterministic,
    )
    if shard_records:
        ds = ds.shard(pipelines, index)

    def parse(serialized):  # [n] strings: parsing a batch at once is much cheaper
        ex = tfrecord.parse_example(serialized, shards.fields)
        if task is None:
            return ex["signal"], ex["ecg_id"], ex["ecg_id"], tf.ones_like(ex["ecg_id"], tf.bool)
        labels = tf.cast(ex[f"labels/{task}"], tf.float32)
        return ex["signal"], labels, ex["ecg_id"], ex[f"has_label/{task}"] > 0

    ds = ds.batch(256).map(parse, num_parallel_calls=auto, deterministic=deterministic).unbatch()
    ds = ds.filter(lambda signal, labels, ecg_id, keep: keep)
    # (Zero-width labels are made after unbatch(): unbatching them crashes TF 2.21.)
    return ds.map(
        lambda signal, labels, ecg_id, keep: (signal, labels if task else tf.zeros([0]), ecg_id)
    )


def _model_inputs(ds, config: FeatureConfig, training, stats, seed, deterministic, raw=False):
    """Batches of (signal, labels, ecg_id) -> (model input, labels, ecg_id): augmentation,
    spectrogram (or the signal itself), normalization, SpecAugment; ``raw``: the signal."""
    stats = None if raw else stats
    mean, std = (None, None) if stats is None else (tf.constant(stats[0]), tf.constant(stats[1]))

    def to_input(signal, labels, ecg_id, seed):
        if training:
            if config.delay_seconds:  # its own seed: other draws stay as without delays
                delay_seed = tf.random.experimental.stateless_fold_in(seed, 1)
                rate = config.sampling_rate
                signal = delay.random_delay(signal, config.delay_seconds, rate, delay_seed)
            signal_seed, spec_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
            signal = features.augment_signal(signal, config, signal_seed)
        if raw or config.representation == "signal":  # [batch(, windows), samples, 12]
            if stats is not None:
                signal = features.normalize(signal, mean, std)
            return signal, labels, ecg_id
        spec = features.spectrogram(signal, config)
        if stats is not None:
            spec = features.normalize(spec, mean, std)
        if training:
            spec = features.spec_augment(spec, config, spec_seed)
        return spec, labels, ecg_id

    # One seed pair per batch, reproducible from ``seed`` and different every epoch.
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    return tf.data.Dataset.zip(ds, seeds).map(
        lambda batch, s: to_input(*batch, s),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=deterministic,
    )
