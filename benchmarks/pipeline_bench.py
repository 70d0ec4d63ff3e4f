"""Benchmark: `make_dataset` (TFRecords -> batched, normalized spectrograms) vs a Python loop.

    python benchmarks/pipeline_bench.py --data_dir=tfrecords/ptbxl100 \
        --ptbxl_dir=../shared/data/ptbxl

Prints one JSON object:
- ecg_per_s: training batches (random 2.5 s crops, gain, noise, STFT, normalization,
  SpecAugment) from the TFRecords of folds 1-8 through `make_dataset` with `cache=True`
  (parsed signals kept in memory, as suits this small subset), best epoch after the first;
  ecg_per_s_no_cache: the same, reading and parsing the shards every epoch;
- baseline_ecg_per_s: what a user would otherwise write, on the same records: `wfdb.rdsamp`
  per record, a random crop, `scipy.signal.stft` per lead, numpy normalization and batching;
- ratio: ecg_per_s / baseline_ecg_per_s;
- stall_fraction: 1 - (step time fed from in-memory tensors) / (step time fed by the
  pipeline), for a training step of a VGG-style 2D CNN (4 blocks of two 3x3 convolutions,
  32 -> 256 channels: the spectrogram baseline of shared/MEASURED.md) on this machine.
Takes about 2 minutes on 2 cores. If --data_dir has no manifest, it is prepared first.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from cpu import cpu_info  # noqa: E402

from ecg_keras.data import ptbxl  # noqa: E402


def baseline(ptbxl_dir, ecg_ids, config, mean, std, batch_size):
    """The hand-written loop: read, crop, per-lead scipy STFT, normalize, batch. ECGs/s."""
    import scipy.signal
    import wfdb

    from ecg_keras.data import features

    db = ptbxl.load_database(ptbxl_dir)
    frame_length, frame_step, fft_length, num_bins = features.stft_sizes(config)
    length = config.input_samples
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    batch = []
    for ecg_id in ecg_ids:
        signal, _ = wfdb.rdsamp(str(ptbxl.record_path(ptbxl_dir, db.loc[ecg_id], 100)))
        offset = rng.integers(0, len(signal) - length + 1)
        crop = signal[offset : offset + length]
        leads = []
        for lead in range(12):
            _, _, z = scipy.signal.stft(
                crop[:, lead],
                window="hann",
                nperseg=frame_length,
                noverlap=frame_length - frame_step,
                nfft=fft_length,
                boundary=None,
                padded=False,
                detrend=False,
            )
            leads.append(np.log(np.abs(z[:num_bins]) + config.log_offset).T)
        batch.append((np.stack(leads, -1) - mean) / std)
        if len(batch) == batch_size:
            np.stack(batch).astype(np.float32)
            batch = []
    return len(ecg_ids) / (time.perf_counter() - start)


def vgg_like(input_shape, num_classes):
    import keras

    layers = [keras.Input(input_shape), keras.layers.BatchNormalization()]
    for width in (32, 64, 128, 256):
        layers += [
            keras.layers.Conv2D(width, 3, padding="same", activation="relu"),
            keras.layers.Conv2D(width, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(2, padding="same"),
        ]
    layers += [keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(num_classes)]
    model = keras.Sequential(layers)
    model.compile("adam", keras.losses.BinaryCrossentropy(from_logits=True))
    return model


def stall(ds, steps):
    """Seconds per training step fed by ``ds``, and fed from the same batches in memory."""
    import tensorflow as tf

    cached = list(ds.take(steps))
    model = vgg_like(cached[0][0].shape[1:], cached[0][1].shape[-1])
    model.fit(ds.take(2), verbose=0)  # trace and compile the step once
    start = time.perf_counter()
    model.fit(ds.repeat().take(steps), verbose=0)
    fed = time.perf_counter() - start
    specs = np.concatenate([s for s, _ in cached])
    labels = np.concatenate([y for _, y in cached])
    memory = tf.data.Dataset.from_tensor_slices((specs, labels))
    memory = memory.batch(cached[0][0].shape[0]).cache()
    model.fit(memory.take(2), verbose=0)
    start = time.perf_counter()
    model.fit(memory.repeat().take(steps), verbose=0)
    in_memory = time.perf_counter() - start
    return fed / steps, in_memory / steps


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", default="tfrecords/ptbxl100")
    parser.add_argument("--ptbxl_dir", default=str(ptbxl.default_dir()))
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--stall_steps", type=int, default=20)
    args = parser.parse_args()

    from ecg_keras import prepare
    from ecg_keras.config import FeatureConfig
    from ecg_keras.data import input_pipeline, manifest

    if not (Path(args.data_dir) / manifest.MANIFEST).is_file():
        prepare.prepare(prepare.PrepareConfig(ptbxl_dir=args.ptbxl_dir, output_dir=args.data_dir))
    config, folds = FeatureConfig(), range(1, 9)
    stats = input_pipeline.feature_stats(args.data_dir, folds, config)

    def dataset(cache, with_ids=False):
        return input_pipeline.make_dataset(
            args.data_dir,
            folds,
            "superdiagnostic",
            config,
            training=True,
            batch_size=args.batch_size,
            stats=stats,
            with_ids=with_ids,
            cache=cache,
        )

    def epochs_per_s(cache):
        ids, rates = [], []
        ds = dataset(cache, with_ids=True)
        for epoch in range(4):  # the first epoch includes tracing; keep the best of the rest
            start, n = time.perf_counter(), 0
            for spec, _, ecg_id in ds:
                n += spec.shape[0]
                if epoch == 0:
                    ids.extend(ecg_id.numpy().tolist())
            if epoch:
                rates.append(n / (time.perf_counter() - start))
        return ids, rates, list(spec.shape[1:])

    ids, rates, shape = epochs_per_s(cache=True)
    _, rates_no_cache, _ = epochs_per_s(cache=False)
    ours = max(rates)
    base = baseline(args.ptbxl_dir, ids, config, stats[0], stats[1], args.batch_size)
    fed, in_memory = stall(dataset(cache=True), args.stall_steps)
    print(
        json.dumps(
            {
                "benchmark": "pipeline",
                "machine": cpu_info(),
                "num_records": len(ids),
                "ecg_per_s": round(ours, 1),
                "epochs_ecg_per_s": [round(r, 1) for r in rates],
                "ecg_per_s_no_cache": round(max(rates_no_cache), 1),
                "baseline": "wfdb.rdsamp + crop + scipy.signal.stft per lead + numpy batching",
                "baseline_ecg_per_s": round(base, 1),
                "ratio": round(ours / base, 2),
                "step_ms_pipeline": round(fed * 1000, 2),
                "step_ms_in_memory": round(in_memory * 1000, 2),
                "stall_fraction": round(max(0.0, 1 - in_memory / fed), 4),
                "batch_size": args.batch_size,
                "input_shape": shape,
            }
        )
    )


if __name__ == "__main__":
    main()
