"""Benchmark: `prepare` (read + check + serialize + hash, 2 processes) vs a plain wfdb loop.

    python benchmarks/prepare_bench.py --ptbxl_dir=../shared/data/ptbxl

Prints one JSON object: records_per_s (the whole prepare), baseline_records_per_s (a
sequential `wfdb.rdsamp` loop over the same records, nothing else) and their ratio, both
measured in this run on warm page cache, best of 3 runs each. Takes about 2 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from cpu import cpu_info  # noqa: E402

from ecg_keras.data import preparation as prepare  # noqa: E402
from ecg_keras.data import ptbxl


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ptbxl_dir", default=str(ptbxl.default_dir()))
    parser.add_argument("--sampling_rate", type=int, default=100)
    parser.add_argument("--num_workers", type=int, default=os.cpu_count())
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import tensorflow as tf  # noqa: F401  (imported before timing: both sides start warm)
    import wfdb

    db = ptbxl.load_database(args.ptbxl_dir)
    paths = [
        str(ptbxl.record_path(args.ptbxl_dir, row, args.sampling_rate)) for _, row in db.iterrows()
    ]
    for p in paths:  # warm the page cache so neither side measures the disk
        Path(p + ".dat").read_bytes()

    # Best of --repeats for each side, interleaved, so that a noisy neighbour on this shared
    # 2-core machine does not decide the ratio.
    baseline_s, prepare_s = [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        for p in paths:
            wfdb.rdsamp(p)
        baseline_s.append(time.perf_counter() - start)
        with tempfile.TemporaryDirectory() as out:
            config = prepare.PrepareConfig(
                ptbxl_dir=args.ptbxl_dir,
                output_dir=out,
                sampling_rate=args.sampling_rate,
                num_workers=args.num_workers,
            )
            start = time.perf_counter()
            manifest = prepare.prepare(config)
            prepare_s.append(time.perf_counter() - start)
    baseline = len(paths) / min(baseline_s)
    seconds = min(prepare_s)
    ours = manifest["num_records"] / seconds
    print(
        json.dumps(
            {
                "benchmark": "prepare",
                "machine": cpu_info(),
                "num_records": manifest["num_records"],
                "records_per_s": round(ours, 1),
                "baseline": "sequential wfdb.rdsamp loop (read only)",
                "baseline_records_per_s": round(baseline, 1),
                "ratio": round(ours / baseline, 2),
                "prepare_seconds": round(seconds, 2),
                "baseline_seconds": [round(s, 2) for s in baseline_s],
                "prepare_seconds_all": [round(s, 2) for s in prepare_s],
                "num_workers": args.num_workers,
                "cpu_count": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
