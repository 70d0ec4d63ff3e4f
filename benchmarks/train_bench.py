"""Benchmark: training records/s of the main spectrogram config against the Keras 1D reference.

    python benchmarks/train_bench.py [--configs=A.cfg,B.cfg] [--data_dir=tfrecords/ptbxl100] \
        [--epochs=3] [--repeats=2]

(default configs: configs/superdiagnostic.cfg, then the baseline
configs/resnet1d_wang_superdiagnostic.cfg)

Each config is built and compiled as ``train`` does (``recipe``: its own crops, features,
batch size and optimizer) and fitted for ``--epochs`` epochs on the training folds; the first
epoch of every fit (tracing, cache filling) is not timed. Configs alternate within each
repeat, so a slower moment of a shared machine hits both. Prints one JSON object: the machine
(CPU model, AVX-512 and AMX flags), per config the median, min and max training records/s
over the timed epochs, and ``ratio``: each config's median over the last config's (the
baseline, by default resnet1d_wang). The validation pass is not part of the timing.
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

DEFAULT_CONFIGS = "configs/superdiagnostic.cfg,configs/resnet1d_wang_superdiagnostic.cfg"


def resolve(flagfile: str, data_dir: str | None):
    """The ``run.Run`` of ``train --flagfile=flagfile``: data checked, statistics computed."""
    from ecg_keras import compare
    from ecg_keras.training.run import Run

    args = [f"--flagfile={flagfile}"] + ([f"--data_dir={data_dir}"] if data_dir else [])
    return Run.prepare(compare.resolve(args))


def epoch_seconds(run, epochs: int) -> tuple[list[float], int]:
    """Seconds of each epoch after the first, and the training records per epoch."""
    import keras

    from ecg_keras.training import recipe

    config = run.config
    keras.utils.set_random_seed(config.seed)
    train_ds = run.split(config.train_folds, True)
    model = recipe.compile_model(recipe.build_model(run), run)
    times = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.start)

    model.fit(train_ds, epochs=epochs + 1, callbacks=[Timer()], verbose=0)
    steps = recipe.steps_per_epoch(config, run.manifest)
    return times[1:], steps * config.batch_size


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default=DEFAULT_CONFIGS, help="flagfiles; last = baseline")
    parser.add_argument("--data_dir", default=None, help="overrides the configs' --data_dir")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per fit")
    parser.add_argument("--repeats", type=int, default=2, help="fits per config, alternating")
    args = parser.parse_args()
    from absl import flags
    from cpu import cpu_info

    from ecg_keras import compare

    compare.define_flags()
    flags.FLAGS.mark_as_parsed()
    flagfiles = [f for f in args.configs.split(",") if f]
    resolved = {f: resolve(f, args.data_dir) for f in flagfiles}
    rates = {f: [] for f in flagfiles}
    for repeat in range(args.repeats):
        for flagfile, run in resolved.items():
            seconds, records = epoch_seconds(run, args.epochs)
            rates[flagfile] += [records / s for s in seconds]
            print(f"repeat {repeat}: {flagfile}: {records} records/epoch, "
                  f"{[round(s, 2) for s in seconds]} s", file=sys.stderr, flush=True)  # fmt: skip
    baseline = statistics.median(rates[flagfiles[-1]])
    result = {
        "benchmark": "train_bench",
        "machine": cpu_info(),
        "epochs_timed": args.epochs * args.repeats,
        "baseline": flagfiles[-1],
        "configs": {
            f: {
                "model": resolved[f].config.model,
                "batch_size": resolved[f].config.batch_size,
                "records_per_s_median": round(statistics.median(r), 1),
                "records_per_s_min": round(min(r), 1),
                "records_per_s_max": round(max(r), 1),
                "ratio": round(statistics.median(r) / baseline, 3),
            }
            for f, r in rates.items()
        },
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
