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
- stall_features_in_pipeline / stall_features_in_model: the input stall of the main config's
  training step (``--config``, float32, built as ``train`` builds it), with the spectrogram
  computed in tf.data and in the model (``--features_in``): step times fed by the pipeline
  and from the same batches held in memory, measured in alternating rounds (``stall``);
  the median stall over rounds and its min and max.
Takes about 3 minutes on 2 cores. If --data_dir has no manifest, it is prepared first.
"""

from __future__ import annotations

import argparse
import json
import statistics
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


def main_config_trainers(data_dir, flagfile):
    """{"pipeline": (model, dataset), "model": (model, dataset)}: the main config's training
    model and training batches with the features in tf.data and in the model, float32."""
    from absl import flags

    from ecg_keras import compare
    from ecg_keras.analysis import comparison
    from ecg_keras.training.run import Run
    from ecg_keras.training.trainer import trainer

    compare.define_flags()
    flags.FLAGS.mark_as_parsed()
    out = {}
    for where in ("pipeline", "model"):
        args = [f"--flagfile={flagfile}", f"--data_dir={data_dir}", f"--features_in={where}"]
        run = Run.prepare(comparison.resolve([*args, "--precision=float32"]))
        model, _, (train_ds, _) = trainer(run)
        out[where] = (model, train_ds)
    return out


def stall(model, ds, steps: int, rounds: int) -> dict:
    """Step times fed by ``ds`` and from the same batches in memory, interleaved.

    Each round runs ``steps`` training steps from one persistent iterator of ``ds`` (so
    prefetching overlaps the steps, as in ``fit``), then ``steps`` steps on ``steps`` batches
    taken from it earlier and held in memory. Alternating rounds exposes both to the same
    moments of a shared machine; the stall of a round is 1 - memory / fed.

    Returns:
      {"step_ms_pipeline", "step_ms_in_memory": medians over rounds, "stall_fraction":
      median of the rounds' stalls (< 0 when the in-memory steps were slower), and
      "stall_min"/"stall_max" over rounds}.
    """
    batches = iter(ds.repeat())
    held = [next(batches) for _ in range(steps)]
    for x, y in held[:2]:  # trace the step once
        model.train_on_batch(x, y)
    fed, memory = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(steps):
            model.train_on_batch(*next(batches))
        fed.append((time.perf_counter() - start) / steps)
        start = time.perf_counter()
        for x, y in held:
            model.train_on_batch(x, y)
        memory.append((time.perf_counter() - start) / steps)
    stalls = [1 - m / f for f, m in zip(fed, memory, strict=True)]
    return {
        "step_ms_pipeline": round(statistics.median(fed) * 1000, 2),
        "step_ms_in_memory": round(statistics.median(memory) * 1000, 2),
        "stall_fraction": round(statistics.median(stalls), 4),
        "stall_min": round(min(stalls), 4),
        "stall_max": round(max(stalls), 4),
    }


def epochs_per_s(args, config, stats, cache: bool):
    """Training batches of folds 1-8 through ``make_dataset``, 4 epochs: (ecg_ids of the first
    epoch, ECGs/s of the other three (the first includes tracing), the input shape)."""
    from ecg_keras.data import input_pipeline

    ds = input_pipeline.make_dataset(
        args.data_dir, range(1, 9), "superdiagnostic", config, training=True,
        batch_size=args.batch_size, stats=stats, with_ids=True, cache=cache,
    )  # fmt: skip
    ids, rates = [], []
    for epoch in range(4):
        start, n = time.perf_counter(), 0
        for spec, _, ecg_id in ds:
            n += spec.shape[0]
            if epoch == 0:
                ids.extend(ecg_id.numpy().tolist())
        if epoch:
            rates.append(n / (time.perf_counter() - start))
    return ids, rates, list(spec.shape[1:])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", default="tfrecords/ptbxl100")
    parser.add_argument("--ptbxl_dir", default=str(ptbxl.default_dir()))
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--stall_steps", type=int, default=10, help="steps per round")
    parser.add_argument("--stall_rounds", type=int, default=7)
    parser.add_argument(
        "--config", default="configs/experiments/complex_bf16.cfg", help="for the stall"
    )
    args = parser.parse_args()

    from ecg_keras.config import FeatureConfig
    from ecg_keras.data import input_pipeline, manifest
    from ecg_keras.data import preparation as prepare

    if not (Path(args.data_dir) / manifest.MANIFEST).is_file():
        prepare.prepare(prepare.PrepareConfig(ptbxl_dir=args.ptbxl_dir, output_dir=args.data_dir))
    config, folds = FeatureConfig(), range(1, 9)
    stats = input_pipeline.feature_stats(args.data_dir, folds, config)

    ids, rates, shape = epochs_per_s(args, config, stats, cache=True)
    _, rates_no_cache, _ = epochs_per_s(args, config, stats, cache=False)
    ours = max(rates)
    base = baseline(args.ptbxl_dir, ids, config, stats[0], stats[1], args.batch_size)
    stalls = {
        where: stall(model, ds, args.stall_steps, args.stall_rounds)
        for where, (model, ds) in main_config_trainers(args.data_dir, args.config).items()
    }
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
                "stall_config": args.config,
                "stall_features_in_pipeline": stalls["pipeline"],
                "stall_features_in_model": stalls["model"],
                "batch_size": args.batch_size,
                "input_shape": shape,
            }
        )
    )


if __name__ == "__main__":
    main()
