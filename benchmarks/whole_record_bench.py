"""Benchmark: long records judged on all of them, against their first 10 s.

    python benchmarks/whole_record_bench.py --model=runs/NAME [--record_dir=../shared/data/cinc]

Over every record of ``--record_dir`` longer than the model's 10 s (20 of the 57 shared
Challenge-layout records: CPSC-Extra 6-60 s, PTB 38-115 s), each read as ``predict`` reads it,
prints one JSON object:
- ``change``: per class and over each record's largest class, the median, 95th percentile and
  max of |p(whole record) - p(first 10 s)|, calibrated probabilities, and how many records
  change a label at the model's thresholds;
- ``cost``: seconds of model time per second of ECG for the whole record (10 s spans through
  the signature) and for the baseline (its first 10 s only), both measured in this run on
  the same records, and their ratio; with the CPU's name and AVX-512/AMX flags.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402


def main() -> None:
    from cpu import cpu_info

    from ecg_keras.data import ptbxl
    from ecg_keras.inference import predictor as predictor_lib
    from ecg_keras.inference import records

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="A run, ensemble, export or .tflite.")
    parser.add_argument("--record_dir", default=str(Path("..") / "shared" / "data" / "cinc"))
    args = parser.parse_args()
    model = predictor_lib.load(args.model)
    meta = model.metadata
    seconds_in = meta["input_samples"] / meta["sampling_rate"]
    long = []
    for path in records.dir_records(args.record_dir):
        signal, rate, _ = ptbxl.read_any_record(path)
        if len(signal) / rate > seconds_in:
            long.append((path, signal, rate))
    model(np.zeros((1, meta["input_samples"], 12), np.float32))  # warm up, not timed
    whole, first, whole_s, first_s, ecg_s = [], [], 0.0, 0.0, 0.0
    for _, signal, rate in long:
        start = time.perf_counter()
        whole.append(records.score_record(model, signal, rate)[0])
        whole_s += time.perf_counter() - start
        start = time.perf_counter()
        first.append(records.score_record(model, signal[: round(seconds_in * rate)], rate)[0])
        first_s += time.perf_counter() - start
        ecg_s += len(signal) / rate
    whole, first = np.array(whole), np.array(first)
    diff = np.abs(whole - first)
    thresholds = np.asarray(meta["thresholds"], np.float32)

    def summary(x):
        figures = {"median": np.median(x), "p95": np.quantile(x, 0.95), "max": np.max(x)}
        return {k: round(float(v), 4) for k, v in figures.items()}

    print(json.dumps({
        "model": args.model,
        "records": len(long),
        "ecg_seconds": round(ecg_s, 1),
        "change": {
            "per_class": {c: summary(diff[:, k]) for k, c in enumerate(meta["classes"])},
            "per_record_max": summary(diff.max(1)),
            "labels_changed": int(((whole >= thresholds) != (first >= thresholds)).any(1).sum()),
            "higher_whole": int((whole > first + 1e-6).any(1).sum()),
        },
        "cost": {
            "whole_record_ms_per_ecg_second": round(1000 * whole_s / ecg_s, 3),
            "baseline_first_10_s_ms_per_record": round(1000 * first_s / len(long), 3),
            "whole_record_ms_per_record": round(1000 * whole_s / len(long), 3),
            "ratio_whole_vs_first_10_s": round(whole_s / first_s, 2),
        },
        "machine": cpu_info(),
    }, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
