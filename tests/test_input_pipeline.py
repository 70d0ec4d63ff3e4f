"""ecg_keras.data.input_pipeline: batches, labels, determinism, sharding and damaged shards."""

import dataclasses
import shutil

import numpy as np
import pytest
import tensorflow as tf

from ecg_keras.config import FeatureConfig
from ecg_keras.data import features, input_pipeline, ptbxl
from ecg_keras.data import preparation as prepare

CONFIG = FeatureConfig()


@pytest.fixture
def tiny_tfrecords(tiny_ptbxl, tmp_path):
    out = tmp_path / "tfr"
    prepare.prepare(prepare.PrepareConfig(str(tiny_ptbxl), str(out), num_workers=1))
    return out


def _batches(ds):
    return [[t.numpy() for t in batch] for batch in ds]


def test_training_batches_on_the_real_subset(real_tfrecords, real_ptbxl_dir):
    stats = input_pipeline.feature_stats(real_tfrecords, range(1, 9), CONFIG)
    ds = input_pipeline.make_dataset(
        real_tfrecords,
        range(1, 9),
        "superdiagnostic",
        CONFIG,
        training=True,
        batch_size=64,
        stats=stats,
        with_ids=True,
        cache=True,
    )
    batches = _batches(ds)
    ids = np.concatenate([b[2] for b in batches])
    assert batches[0][0].shape == (64, 24, 26, 12) and batches[0][1].shape == (64, 5)
    # Folds 1-8 hold 1,490 records; those without a superclass are dropped.
    tasks, db = ptbxl.load_tasks(real_ptbxl_dir), ptbxl.load_database(real_ptbxl_dir)
    train = db[db.strat_fold <= 8]
    labelled = [
        i
        for i, c in zip(train.index, train.scp_codes, strict=True)
        if tasks.labels(c)["superdiagnostic"]
    ]
    assert sorted(ids.tolist()) == sorted(labelled) and len(labelled) < 1490
    labels = {int(i): y for b in batches for i, y in zip(b[2], b[1], strict=True)}
    for ecg_id in labelled[:20]:
        np.testing.assert_array_equal(
            labels[ecg_id], tasks.multi_hot(db.loc[ecg_id].scp_codes)["superdiagnostic"]
        )
    spec = np.concatenate([b[0] for b in batches])
    assert abs(spec.mean()) < 0.3 and 0.6 < spec.std() < 1.4  # normalized on these folds


def test_seeded_training_is_reproducible_and_epochs_differ(tiny_tfrecords):
    def run(seed):
        ds = input_pipeline.make_dataset(
            tiny_tfrecords,
            range(1, 9),
            "superdiagnostic",
            CONFIG,
            training=True,
            batch_size=8,
            seed=seed,
            deterministic=True,
            with_ids=True,
        )
        return _batches(ds), _batches(ds)

    (first, second), (again, _) = run(0), run(0)
    for a, b in zip(first, again, strict=True):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)
    assert not np.array_equal(first[0][0], second[0][0])  # new crops and masks each epoch
    assert not np.array_equal(first[0][0], run(1)[0][0][0])


def test_evaluation_matches_the_eager_features(tiny_tfrecords, tiny_ptbxl):
    ds = input_pipeline.make_dataset(
        tiny_tfrecords,
        [9, 10],
        "superdiagnostic",
        CONFIG,
        training=False,
        batch_size=4,
        with_ids=True,
        deterministic=True,
    )
    spec, labels, ids = next(iter(ds))
    # Folds 9 and 10 of the tiny set: 3 of their 6 records have a superclass.
    assert tuple(spec.shape) == (3, 7, 24, 26, 12)  # 2.5 s windows at a 1.25 s stride
    db = ptbxl.load_database(tiny_ptbxl)
    signal = ptbxl.read_signal(ptbxl.record_path(tiny_ptbxl, db.loc[int(ids[0])], 100), 100)
    expected = features.spectrogram(features.sliding_windows(signal, 250, 125), CONFIG)
    np.testing.assert_allclose(spec[0].numpy(), expected.numpy(), atol=1e-6)
    full = dataclasses.replace(CONFIG, crop_seconds=0.0)
    ds = input_pipeline.make_dataset(
        tiny_tfrecords, [9, 10], None, full, training=False, batch_size=16, deterministic=True
    )
    spec, labels = next(iter(ds))
    assert tuple(spec.shape) == (6, 118, 26, 12) and labels.shape == (6, 0)  # all kept


def test_input_context_shards_without_overlap(tiny_tfrecords):
    def ids(files_per_pipeline_ok, pipelines):
        seen = []
        for index in range(pipelines):
            context = tf.distribute.InputContext(pipelines, index, 1)
            ds = input_pipeline.make_dataset(
                tiny_tfrecords,
                files_per_pipeline_ok,
                "rhythm",
                CONFIG,
                training=False,
                batch_size=4,
                with_ids=True,
                input_context=context,
            )
            seen.append(sorted(int(i) for b in ds for i in b[2]))
        return seen

    by_file = ids(range(1, 9), 2)  # 8 shards for 2 pipelines: each reads 4 files
    by_record = ids([1], 2)  # 1 shard for 2 pipelines: records alternate
    for parts, total in ((by_file, 24), (by_record, 3)):
        flat = [i for part in parts for i in part]
        assert len(flat) == len(set(flat)) == total and all(parts)


def test_damaged_or_mismatched_data_names_the_problem(tiny_tfrecords, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_tfrecords, copy)
    shard = copy / "fold03-00000-of-00001.tfrecord"
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])
    with pytest.raises(input_pipeline.DataError, match="fold03-00000-of-00001.*truncated"):
        input_pipeline.make_dataset(copy, [3], "rhythm", CONFIG, training=False)
    shard.write_bytes(data[:-10] + b"0123456789")
    with pytest.raises(input_pipeline.DataError, match="fold03-00000-of-00001.*sha256"):
        input_pipeline.make_dataset(copy, [3], "rhythm", CONFIG, training=False)
    with pytest.raises(input_pipeline.DataError, match="unknown task 'nope'"):
        input_pipeline.make_dataset(tiny_tfrecords, [1], "nope", CONFIG, training=False)
    with pytest.raises(input_pipeline.DataError, match="fold 11 has no records"):
        input_pipeline.make_dataset(tiny_tfrecords, [11], "rhythm", CONFIG, training=False)
    config500 = dataclasses.replace(CONFIG, sampling_rate=500)
    with pytest.raises(input_pipeline.DataError, match="100 Hz.*--sampling_rate=500"):
        input_pipeline.make_dataset(tiny_tfrecords, [1], "rhythm", config500, training=False)
    with pytest.raises(FileNotFoundError, match="manifest.json not found"):
        input_pipeline.make_dataset(tmp_path, [1], "rhythm", CONFIG, training=False)


def test_feeds_a_distribution_strategy(tiny_tfrecords):
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    dist = strategy.distribute_datasets_from_function(
        lambda context: input_pipeline.make_dataset(
            tiny_tfrecords,
            range(1, 9),
            "rhythm",
            CONFIG,
            training=True,
            batch_size=8,
            input_context=context,
        )
    )
    spec, labels = next(iter(dist))
    assert tuple(spec.shape) == (8, 24, 26, 12) and tuple(labels.shape) == (8, 2)

    def worker_ids(folds, index):
        ds = input_pipeline.make_dataset(
            tiny_tfrecords,
            folds,
            "rhythm",
            CONFIG,
            training=False,
            batch_size=4,
            with_ids=True,
            input_context=tf.distribute.InputContext(2, index, 1),  # 2 pipelines, 1 replica each
        )
        policy = ds.options().experimental_distribute.auto_shard_policy
        assert policy == tf.data.experimental.AutoShardPolicy.OFF  # sharded by make_dataset
        return {int(i) for batch in ds for i in batch[2]}

    for folds, total in ((range(1, 9), 24), ([1], 3)):  # by file, then by record
        first, second = worker_ids(folds, 0), worker_ids(folds, 1)
        assert first and second and not first & second and len(first | second) == total


def test_signal_representation_standardizes_the_crops(tiny_tfrecords, tiny_ptbxl):
    signal_config = dataclasses.replace(CONFIG, representation="signal", amplitude_scale=1.0)
    db = ptbxl.load_database(tiny_ptbxl)
    records = {
        i: ptbxl.read_signal(ptbxl.record_path(tiny_ptbxl, db.loc[i], 100), 100)
        for i in db.index
        if db.loc[i].strat_fold <= 8
    }
    # One mean and std over every sample and lead of the training folds (StandardScaler).
    mean, std = input_pipeline.feature_stats(tiny_tfrecords, range(1, 9), signal_config)
    every = np.stack(list(records.values())).astype(np.float64)
    assert mean.shape == std.shape == ()
    np.testing.assert_allclose([mean, std], [every.mean(), every.std()], rtol=1e-4, atol=1e-7)

    def first_batch(folds, training):
        ds = input_pipeline.make_dataset(
            tiny_tfrecords,
            folds,
            "superdiagnostic",
            signal_config,
            training=training,
            batch_size=4,
            stats=(mean, std),
            with_ids=True,
            deterministic=True,
        )
        return [t.numpy() for t in next(iter(ds))]

    windows, _, ids = first_batch([9, 10], False)
    assert windows.shape == (3, 7, 250, 12)  # 2.5 s windows at a 1.25 s stride, no STFT
    signal = ptbxl.read_signal(ptbxl.record_path(tiny_ptbxl, db.loc[int(ids[0])], 100), 100)
    expected = (features.sliding_windows(signal, 250, 125).numpy() - mean) / std
    np.testing.assert_allclose(windows[0], expected, atol=1e-5)
    # Training: random 2.5 s crops of the standardized record, no SpecAugment masks.
    crops, _, ids = first_batch(range(1, 9), True)
    assert crops.shape == (4, 250, 12)
    for crop, ecg_id in zip(crops, ids, strict=True):
        whole = (records[int(ecg_id)] - mean) / std  # [1000, 12]
        errors = [np.abs(whole[s : s + 250] - crop).max() for s in range(1000 - 250 + 1)]
        assert min(errors) < 1e-5
