"""Benchmark: the same ECG, recorded or stored differently, must get the same answer.

    python benchmarks/robustness_bench.py --workdir=runs/vgg_superdiagnostic
    python benchmarks/robustness_bench.py --workdir=saved_models/NAME/1  # or a .tflite file

Over every record present at both rates in ``--ptbxl_dir`` (488 in the shared subset), each
read as ``ecg_keras.predict`` reads a user's record (the 500 Hz file resampled to the model's
100 Hz), prints one JSON object:
- ``rate_100_vs_500``: per class, the median, 95th percentile and max of
  |p(100 Hz file) - p(500 Hz file)|, and the same over each record's largest difference
  (``per_record_max``, what the goals bound), with the five worst records;
- ``test_macro_auc``: from the 100 Hz and the 500 Hz files, over the labelled test-fold
  records present at both rates (66 in the subset), and their difference;
- ``shuffled_leads`` and ``micro_volts``: the 100 Hz records written again with their leads in
  a random order, or in µV, against the original files;
- ``delay_1_sample`` and ``delay_0.12_sample``: the 100 Hz records delayed by one sample
  (10 ms) and by 0.12 sample (1.2 ms, the lag between PhysioNet's 100 Hz files and the
  resampled 500 Hz ones) with a band-limited delay (``robustness.delayed``), against the
  records as they are: the same figures as ``rate_100_vs_500``, with the five worst records;
- ``baseline``: the 500 Hz files resampled with ``scipy.signal.resample_poly``'s default zero
  padding (what ``predict`` did before), and the ratio of its figures to predict's;
- ``goals``: per-record max <= 0.05, 95th percentile <= 0.02 (for the two files and for
  both delays), test AUC within 0.01.
Takes about a minute for a vgg_small run on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

# (name, per_record_max statistic, bound) of each delay goal.
GOALS = (("max_le_0.05", "max", 0.05), ("p95_le_0.02", "p95", 0.02))


def zero_padded(pairs, metadata, ptbxl_dir):
    """The 500 Hz files resampled as predict did before (resample_poly, zero padding)."""
    import scipy.signal

    from ecg_keras.data import ptbxl

    db = ptbxl.load_database(ptbxl_dir)
    out = []
    for ecg_id in pairs.ecg_ids:
        signal, rate, _ = ptbxl.read_any_record(ptbxl.record_path(ptbxl_dir, db.loc[ecg_id], 500))
        ratio = Fraction(metadata["sampling_rate"] / rate).limit_denominator(1000)
        out.append(scipy.signal.resample_poly(signal, ratio.numerator, ratio.denominator, axis=0))
    return np.stack(out).astype(np.float32)[:, : metadata["input_samples"]]


def test_auc(pairs, p_low, p_high, test_folds) -> dict:
    from ecg_keras.training import metrics

    keep = np.isin(pairs.folds, test_folds) & (pairs.labels.sum(1) > 0)
    low = metrics.macro_auc(pairs.labels[keep], p_low[keep])
    high = metrics.macro_auc(pairs.labels[keep], p_high[keep])
    return {"records": int(keep.sum()), "from_100hz": low, "from_500hz": high, "diff": high - low}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True, help="run workdir, export folder or .tflite")
    parser.add_argument("--ptbxl_dir", default=None, help="default: $PTBXL_DIR or ../shared")
    parser.add_argument("--test_folds", default="10")
    parser.add_argument("--limit", type=int, default=None, help="first N pairs only")
    args = parser.parse_args()

    import tqdm

    from ecg_keras.analysis import robustness
    from ecg_keras.data import ptbxl
    from ecg_keras.inference import predictor

    start = time.perf_counter()
    ptbxl_dir = args.ptbxl_dir or ptbxl.default_dir()
    model = predictor.load(args.workdir)
    meta, classes = model.metadata, model.metadata["classes"]
    bar = dict(desc="reading pairs", unit="pair", file=sys.stderr)
    pairs = robustness.read_pairs(ptbxl_dir, meta, args.limit, lambda it: tqdm.tqdm(it, **bar))
    p_low, p_high = model.probabilities(pairs.low), model.probabilities(pairs.high)
    rate = robustness.differences(p_low, p_high, classes)
    rate["worst"] = robustness.worst(p_low, p_high, pairs.ecg_ids, classes)
    p_shuffled = model.probabilities(robustness.rewritten(pairs.low_paths, meta, 0, False))
    p_micro = model.probabilities(robustness.rewritten(pairs.low_paths, meta, None, True))
    p_zero = model.probabilities(zero_padded(pairs, meta, ptbxl_dir))
    shifts = {}
    for name, samples in (("delay_1_sample", 1.0), ("delay_0.12_sample", 0.12)):
        p_late = model.probabilities(robustness.delayed(pairs.low, samples))
        shifts[name] = robustness.differences(p_low, p_late, classes)
        shifts[name]["worst"] = robustness.worst(p_low, p_late, pairs.ecg_ids, classes)
    baseline = robustness.differences(p_low, p_zero, classes)["per_record_max"]
    ours = rate["per_record_max"]
    auc = test_auc(pairs, p_low, p_high, [int(f) for f in args.test_folds.split(",")])
    result = {
        "benchmark": "robustness",
        "model": str(args.workdir),
        "pairs": int(len(pairs.ecg_ids)),
        "rate_100_vs_500": rate,
        "test_macro_auc": auc,
        "shuffled_leads": robustness.differences(p_low, p_shuffled, classes)["per_record_max"],
        "micro_volts": robustness.differences(p_low, p_micro, classes)["per_record_max"],
        **shifts,
        "baseline": {
            "name": "500 Hz files through resample_poly with zero padding (predict before)",
            "per_record_max": baseline,
            "ratio_p95_vs_baseline": ours["p95"] / max(baseline["p95"], 1e-12),
            "ratio_max_vs_baseline": ours["max"] / max(baseline["max"], 1e-12),
        },
        "goals": {
            "per_record_max_le_0.05": ours["max"] <= 0.05,
            "per_record_p95_le_0.02": ours["p95"] <= 0.02,
            **{
                f"{name}_{goal}": shifts[name]["per_record_max"][stat] <= bound
                for name in shifts
                for goal, stat, bound in GOALS
            },
            "test_auc_within_0.01": abs(auc["diff"]) <= 0.01,
        },
        "seconds": round(time.perf_counter() - start, 1),
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
