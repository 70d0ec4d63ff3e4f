"""Benchmark: inference speed, size and test macro AUC of every exported artifact of one run.

    python -m ecg_keras.export --workdir=runs/vgg_superdiagnostic \
        --output_dir=saved_models/vgg_superdiagnostic
    python benchmarks/inference_bench.py --export_dir=saved_models/vgg_superdiagnostic/1

Prints one JSON object with one entry per artifact under ``artifacts``:
- name: keras (the export endpoint run eagerly on the trained Keras model), saved_model
  (``tf.saved_model.load`` + the ``serving_default`` signature), tflite_MODE (ai_edge_litert);
- latency_ms_median, latency_ms_p95: one 10 s ECG (batch 1, float32 [1, 1000, 12]) per call,
  ``--latency_runs`` calls after 10 warm-up calls, single thread;
- throughput_batch64: ECGs per second in batches of 64, single thread, best of
  ``--throughput_batches`` batches;
- size_bytes: model.keras, saved_model.pb + variables/, or the .tflite file;
- test_macro_auc: on the run's test folds (the export's check records).
``ratios_vs_saved_model`` gives each artifact's speed-up at batch 1 and batch 64, its size as a
fraction of the SavedModel's, and its AUC difference; ``goals`` checks full-integer int8 against
the SavedModel (>= 3x faster at batch 1, <= 1/3 the size, <= 0.01 AUC lost). Every artifact
runs with one thread (TensorFlow's intra- and inter-op pools, and the TFLite interpreter), so
the figures compare the runtimes, not how many cores they grab; all are measured in one run.
Takes about a minute on 2 cores.
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


def timings(call, inputs, runs, warmup=10):
    """Seconds per call of ``call(inputs[i])``, cycling through ``inputs``."""
    for i in range(warmup):
        call(inputs[i % len(inputs)])
    out = []
    for i in range(runs):
        start = time.perf_counter()
        call(inputs[i % len(inputs)])
        out.append(time.perf_counter() - start)
    return np.array(out)


def load_artifacts(export_dir: Path, data_dir):
    """(test records, [(name, probabilities function, size in bytes)], metadata): the
    run's Keras endpoint first, then every artifact of the export, each on one thread."""
    from ecg_keras import filenames
    from ecg_keras.deploy import export_check, runtime
    from ecg_keras.inference.predictor import Predictor

    report = json.loads((export_dir / filenames.EXPORT_JSON).read_text())
    source = report["source"]
    predictor = Predictor.from_workdir(source["workdir"], source.get("model"), data_dir)
    records = export_check.load_records(predictor.run, predictor.config.test_folds)
    meta = json.loads(runtime.metadata_path(export_dir).read_text())

    artifacts = [("keras", predictor.probabilities, Path(source["model"]).stat().st_size)]
    for artifact in report["artifacts"][1:]:
        loaded = runtime.load(export_dir / artifact["path"], num_threads=1)
        artifacts.append((artifact["name"], loaded.probabilities, loaded.size_bytes))
    return records, artifacts, meta


def measure(records, artifacts, args) -> list[dict]:
    """Batch-1 latency, batch-64 throughput, size and test macro AUC of each artifact."""
    from ecg_keras.training import metrics

    single = [records.signals[i : i + 1] for i in range(len(records.signals))]
    batches = [records.signals[i : i + 64] for i in range(0, len(records.signals) - 63, 64)]
    rows = []
    for name, predict, size in artifacts:
        print(f"measuring {name}", file=sys.stderr, flush=True)
        latency = timings(predict, single, args.latency_runs)
        batch = timings(predict, batches, args.throughput_batches, warmup=1)
        probs = np.concatenate(
            [predict(records.signals[i : i + 64]) for i in range(0, len(single), 64)]
        )
        rows.append(
            {
                "name": name,
                "latency_ms_median": round(float(np.median(latency)) * 1000, 2),
                "latency_ms_p95": round(float(np.percentile(latency, 95)) * 1000, 2),
                "throughput_batch64": round(64 / float(batch.min()), 1),
                "size_bytes": int(size),
                "test_macro_auc": round(metrics.macro_auc(records.labels, probs), 4),
            }
        )
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export_dir", default="saved_models/vgg_superdiagnostic/1")
    parser.add_argument("--data_dir", default=None, help="prepared TFRecords (default: run's)")
    parser.add_argument("--latency_runs", type=int, default=200)
    parser.add_argument("--throughput_batches", type=int, default=5)
    args = parser.parse_args()

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)  # before any TF work
    tf.config.threading.set_inter_op_parallelism_threads(1)

    export_dir = Path(args.export_dir)
    records, artifacts, meta = load_artifacts(export_dir, args.data_dir)
    rows = measure(records, artifacts, args)
    base = next(r for r in rows if r["name"] == "saved_model")
    ratios = {
        r["name"]: {
            "speedup_batch1": round(base["latency_ms_median"] / r["latency_ms_median"], 2),
            "speedup_batch64": round(r["throughput_batch64"] / base["throughput_batch64"], 2),
            "size_fraction": round(r["size_bytes"] / base["size_bytes"], 3),
            "auc_difference": round(r["test_macro_auc"] - base["test_macro_auc"], 4),
        }
        for r in rows
    }
    int8 = ratios.get("tflite_int8")
    goals = None
    if int8:
        goals = {
            "int8_3x_faster_batch1": int8["speedup_batch1"] >= 3,
            "int8_at_most_third_size": int8["size_fraction"] <= 1 / 3,
            "int8_auc_within_0.01": int8["auc_difference"] >= -0.01,
        }
    print(
        json.dumps(
            {
                "benchmark": "inference",
                "machine": cpu_info(),
                "export_dir": str(export_dir),
                "test_records": len(records.signals),
                "input": f"float32 [batch, {meta['input_samples']}, 12] mV",
                "threads": 1,
                "artifacts": rows,
                "ratios_vs_saved_model": ratios,
                "goals": goals,
            }
        )
    )


if __name__ == "__main__":
    main()
