"""Benchmark: scoring a run's validation fold, as every epoch's validation and ``evaluate`` do.

    python benchmarks/scoring_bench.py --workdir=runs/superdiagnostic

Scores the run's validation folds with its own windows and aggregation (the main config: 31
windows of 2.5 s per record) two ways, on the same batches of records:
- baseline: one eager ``network(x, training=False)`` call per batch of records, every window
  of the batch at once (``training/scoring.py`` before December 2026: 128 records x 31 windows
  = 3,968 network inputs per call);
- chunked: ``scoring.predict_dataset`` as it is now (chunks of ``scoring.CHUNK`` inputs
  through one cached tf.function).

Prints one JSON object: seconds and windows/s of each (the best of ``--repeats`` passes, after
one warm-up pass that also traces the tf.function), the ratio chunked / baseline, the
validation macro AUC of each and their largest |dp| (the two must agree: same network, other
kernel order), the CPU (``cpu.py``) and thread count.
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


def eager_predict(network, ds, aggregate):
    """The baseline: ``predict_dataset``'s contract, one eager call per batch of records."""
    from ecg_keras.data import windows as windows_lib

    truth, probs = [], []
    for x, labels, _ in ds:
        x = x.numpy()
        logits = np.asarray(network(x.reshape(-1, *x.shape[2:]), training=False), np.float64)
        prob = 1 / (1 + np.exp(-logits.reshape(x.shape[0], x.shape[1], -1)))
        probs.append(windows_lib.aggregate(prob, aggregate))
        truth.append(labels.numpy())
    return np.concatenate(truth), np.concatenate(probs)


def best_of(fn, repeats):
    """(result of the last call, best seconds over ``repeats`` calls after one warm-up)."""
    out = fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return out, min(times)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True, help="a trained run (train's --workdir)")
    parser.add_argument("--repeats", type=int, default=2, help="timed passes of each way")
    args = parser.parse_args(argv)

    import tensorflow as tf
    from sklearn.metrics import roc_auc_score

    from ecg_keras.inference.predictor import Predictor
    from ecg_keras.training import scoring

    predictor = Predictor.from_workdir(args.workdir)
    (member,) = predictor.members
    run, network, aggregate = member.run, member.network, predictor.aggregate
    folds = run.config.val_folds
    ds = run.split(folds, False)
    windows = sum(int(x.shape[0]) * int(x.shape[1]) for x, _, _ in ds)

    (y, p_base), t_base = best_of(lambda: eager_predict(network, ds, aggregate), args.repeats)
    (_, y2, p_new), t_new = best_of(
        lambda: scoring.predict_dataset(network, ds, aggregate), args.repeats
    )
    np.testing.assert_array_equal(y, y2)  # same records, same order
    result = {
        "workdir": args.workdir,
        "val_folds": list(folds),
        "records": len(y),
        "windows": windows,
        "chunk": scoring.CHUNK,
        "baseline_eager_whole_batch": {
            "seconds": round(t_base, 2),
            "windows_per_s": round(windows / t_base, 1),
            "val_macro_auc": round(float(roc_auc_score(y, p_base, average="macro")), 4),
        },
        "chunked_tf_function": {
            "seconds": round(t_new, 2),
            "windows_per_s": round(windows / t_new, 1),
            "val_macro_auc": round(float(roc_auc_score(y, p_new, average="macro")), 4),
        },
        "speedup_vs_baseline": round(t_base / t_new, 2),
        "max_abs_dp": float(np.max(np.abs(p_base - p_new))),
        "threads": {
            "intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
        },
        **cpu_info(),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
