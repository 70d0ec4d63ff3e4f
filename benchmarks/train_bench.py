"""Benchmark: training records/s of the main spectrogram config, trained several ways, against
the way it trained before the speed work and against the Keras 1D reference.

    python benchmarks/train_bench.py [--config="LABEL=FLAGFILE [--flag=value ...]" ...] \
        [--baseline=LABEL] [--data_dir=tfrecords/ptbxl100] [--epochs=3] [--repeats=2]

Default configs (``DEFAULT_CONFIGS``): ``before`` = the complex-spectrogram VGG
(configs/experiments/complex_bf16.cfg, the main config until issue 20's third session) with the
features in tf.data, float32, no XLA (how it trained before; the baseline); the same with the
features in the model, with mixed_bfloat16, with both, with both and XLA; ``main`` = the config
as it is; ``resnet1d_wang`` = the Keras 1D reference, as it is and in mixed_bfloat16.

Each config is built as ``train`` builds it (``training.trainer``: its crops, features, dtype
policy, XLA and optimizer) and fitted for ``--epochs`` epochs on the training folds; the first
epoch of every fit (tracing, XLA compilation, cache filling) is not timed. Configs alternate
within each repeat, so a slower moment of a shared machine hits all of them. Prints one JSON
object: the machine (CPU model, AVX-512 and AMX flags, GPUs), per config the median, min and
max training records/s over the timed epochs and ``ratio``: its median over the baseline's.
The validation pass is not part of the timing.
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

# The spectrogram config this benchmark measured (the main config when it was written; the main
# config is now the two-stream model, whose features are computed inside the network).
MAIN = "configs/experiments/complex_bf16.cfg"
REFERENCE = "configs/resnet1d_wang_superdiagnostic.cfg"
TODAY = "--features_in=pipeline --precision=float32 --nojit_compile"
DEFAULT_CONFIGS = (
    f"before={MAIN} {TODAY}",
    f"features_in_model={MAIN} {TODAY} --features_in=model",
    f"bfloat16={MAIN} {TODAY} --precision=mixed_bfloat16",
    f"model_bfloat16={MAIN} {TODAY} --features_in=model --precision=mixed_bfloat16",
    f"model_bfloat16_xla={MAIN} --features_in=model --precision=mixed_bfloat16 --jit_compile",
    f"main={MAIN}",
    f"resnet1d_wang={REFERENCE}",
    f"resnet1d_wang_bfloat16={REFERENCE} --precision=mixed_bfloat16",
)


def resolve(spec: str, data_dir: str | None):
    """(label, the ``run.Run`` of ``train --flagfile=FLAGFILE [flags]``) for
    "LABEL=FLAGFILE [flags]": data checked, statistics computed."""
    from ecg_keras.analysis import comparison
    from ecg_keras.training.run import Run

    label, _, rest = spec.partition("=")
    flagfile, *extra = rest.split()
    args = [f"--flagfile={flagfile}", *extra] + ([f"--data_dir={data_dir}"] if data_dir else [])
    return label, Run.prepare(comparison.resolve(args))


def epoch_seconds(run, epochs: int) -> tuple[list[float], int]:
    """Seconds of each epoch after the first, and the training records per epoch."""
    import keras

    from ecg_keras.training import recipe
    from ecg_keras.training.trainer import trainer

    config = run.config
    keras.utils.set_random_seed(config.seed)
    model, _, (train_ds, _) = trainer(run)
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
    parser.add_argument(
        "--config", action="append", help='"LABEL=FLAGFILE [--flag=value ...]"; repeatable'
    )
    parser.add_argument("--baseline", default="before", help="the LABEL ratios are against")
    parser.add_argument("--data_dir", default=None, help="overrides the configs' --data_dir")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per fit")
    parser.add_argument("--repeats", type=int, default=2, help="fits per config, alternating")
    args = parser.parse_args()
    from absl import flags

    from ecg_keras import compare

    compare.define_flags()
    flags.FLAGS.mark_as_parsed()
    resolved = dict(resolve(spec, args.data_dir) for spec in args.config or DEFAULT_CONFIGS)
    if args.baseline not in resolved:
        parser.error(f"--baseline={args.baseline} is none of the labels {list(resolved)}")
    rates = {label: [] for label in resolved}
    for repeat in range(args.repeats):
        for label, run in resolved.items():
            seconds, records = epoch_seconds(run, args.epochs)
            rates[label] += [records / s for s in seconds]
            print(f"repeat {repeat}: {label}: {records} records/epoch, "
                  f"{[round(s, 2) for s in seconds]} s", file=sys.stderr, flush=True)  # fmt: skip
    print(json.dumps(summary(args, resolved, rates), indent=2))


def summary(args, resolved, rates) -> dict:
    """The benchmark's JSON object."""
    import tensorflow as tf
    from cpu import cpu_info

    baseline = statistics.median(rates[args.baseline])
    gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    return {
        "benchmark": "train_bench",
        "machine": {**cpu_info(), "gpus": gpus},
        "epochs_timed": args.epochs * args.repeats,
        "baseline": args.baseline,
        "configs": {
            label: {
                "flags": spec_flags(resolved[label].config),
                "records_per_s_median": round(statistics.median(r), 1),
                "records_per_s_min": round(min(r), 1),
                "records_per_s_max": round(max(r), 1),
                "ratio": round(statistics.median(r) / baseline, 3),
            }
            for label, r in rates.items()
        },
    }


def spec_flags(config) -> dict:
    """What tells the configs apart."""
    from ecg_keras.training import device_features

    return {
        "model": config.model,
        "batch_size": config.batch_size,
        "features_in": config.features_in,
        "precision": device_features.policy(config),
        "jit_compile": config.jit_compile,
    }


if __name__ == "__main__":
    main()
