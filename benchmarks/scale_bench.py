"""Benchmark: a full-size PTB-XL rehearsal (prepare, TFRecord size, one epoch, evaluate).

    python benchmarks/scale_bench.py --ptbxl_dir=../shared/data/ptbxl --work_dir=/tmp/scale \
        [--rates=100,500] [--records=21837] [--epochs=1] [--skip=train,evaluate]

Builds a PTB-XL-shaped folder of ``--records`` records from the real subset: the first rows of
``ptbxl_database_full.csv`` (every row of the release, ecg_id order) keep their ecg_id, fold
and labels, and each row's signal files are a real record's under the row's own name (its
own record where the subset has it, else a real one reused: a rewritten ``.hea``, the ``.dat``
hard-linked). Then, for each rate, it times ``python -m ecg_keras.prepare``, measures the
TFRecords on disk against the same records serialized with float32 signals (the schema-1
baseline, re-serialized from the first shard), trains one epoch of
``configs/experiments/complex_bf16.cfg`` (the main config when it was written) with
``--cache`` and ``--nocache``, and times ``evaluate``.
Each command runs in its own process; its peak memory is the sampled sum of its process
tree's RSS (readers included) and the largest single process's ``ru_maxrss``.

Prints one JSON object; progress goes to stderr, commands' output to WORK_DIR/logs/.
Signals repeat (1,987 distinct records at 100 Hz, 488 at 500 Hz) and their labels are other
records': the AUCs mean nothing, the times and sizes are PTB-XL's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from cpu import cpu_info  # noqa: E402

from ecg_keras import atomic  # noqa: E402
from ecg_keras.data import ptbxl  # noqa: E402

FULL_CSV = "ptbxl_database_full.csv"
COLUMN = {100: "filename_lr", 500: "filename_hr"}
SUFFIX = {100: "lr", 500: "hr"}
BUILT = "scale_bench.json"  # written last: the folder is complete when it exists
MIB = 2**20


def log(message: str) -> None:
    print(f"[scale_bench] {message}", file=sys.stderr, flush=True)


def _link(source: Path, target: Path) -> None:
    """A hard link (prepare then reads ordinary files); a symlink across filesystems."""
    try:
        os.link(source, target)
    except OSError:
        target.symlink_to(source.resolve())


def build_folder(src: Path, dest: Path, records: int, rates: list[int]) -> dict:
    """Writes DEST: ``ptbxl_database.csv`` (the first ``records`` rows of ``FULL_CSV``, file
    names pointing into DEST), ``scp_statements.csv`` and one record per row at each rate.
    Reuses a complete folder built with the same arguments. Returns what was built."""
    spec = {"ptbxl_dir": str(src.resolve()), "records": records, "rates": rates}
    done = dest / BUILT
    if done.is_file() and json.loads(done.read_text()).get("spec") == spec:
        return json.loads(done.read_text())
    full = pd.read_csv(src / FULL_CSV, index_col="ecg_id").sort_index()
    if not 1 <= records <= len(full):
        raise ValueError(f"--records={records}: {src / FULL_CSV} has {len(full)} rows")
    rows, real = full.iloc[:records].copy(), ptbxl.load_database(src)
    start, distinct = time.perf_counter(), {}
    for rate in rates:
        column = real[COLUMN[rate]]
        present = [i for i in real.index if (src / f"{column[i]}.hea").is_file()]
        if not present:
            raise ValueError(f"{src}: no real records at {rate} Hz to repeat")
        distinct[str(rate)] = len(present)
        have, headers, names = set(present), {}, []
        for n, ecg_id in enumerate(rows.index):
            source_id = ecg_id if ecg_id in have else present[n % len(present)]
            source = src / real.at[source_id, COLUMN[rate]]
            name = f"records{rate}/{ecg_id // 1000 * 1000:05d}/{ecg_id:05d}_{SUFFIX[rate]}"
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if source_id not in headers:
                headers[source_id] = source.with_suffix(".hea").read_text()
            # The header names its record and .dat file: rename both to the new record.
            text = headers[source_id].replace(source.name, target.name)
            target.with_suffix(".hea").write_text(text)
            target.with_suffix(".dat").unlink(missing_ok=True)
            _link(source.with_suffix(".dat"), target.with_suffix(".dat"))
            names.append(name)
        rows[COLUMN[rate]] = names
    atomic.write_text(dest / ptbxl.STATEMENTS_CSV, (src / ptbxl.STATEMENTS_CSV).read_text())
    with atomic.replacing(dest / ptbxl.DATABASE_CSV) as tmp:
        rows.to_csv(tmp)
    built = {"spec": spec, "seconds": round(time.perf_counter() - start, 1)}
    built["distinct_signal_files"] = distinct
    atomic.write_json(done, built)
    return built


def _tree_rss(root: int) -> int:
    """Bytes of RSS of ``root`` and all its descendants now (from /proc; 0 once it is gone)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue  # gone meanwhile
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        children = [c for c, p in parents.items() if p == pid and c not in tree]
        tree.update(children)
        frontier.extend(children)
    total = 0
    for pid in tree:
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return total * os.sysconf("SC_PAGE_SIZE")


def measure(name: str, command: list[str], logs: Path) -> dict:
    """Runs ``command``; returns wall seconds and peak memory (MiB): ``peak_rss_tree_mib``
    (process tree, sampled every 0.2 s) and ``max_rss_process_mib`` (largest process)."""
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{name}.log"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    log(f"{name}: {' '.join(command)}")
    with open(log_path, "w") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        peak, stop = [0], threading.Event()

        def sample():
            while not stop.wait(0.2):
                peak[0] = max(peak[0], _tree_rss(proc.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        # wait4: this child's own resource use, its waited-for readers included.
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        stop.set()
        sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = log_path.read_text()[-3000:]
        raise RuntimeError(f"{name} failed (exit {proc.returncode}); {log_path} ends:\n{tail}")
    log(f"{name}: {seconds:.1f} s, peak {peak[0] / MIB:.0f} MiB")
    return {
        "wall_seconds": round(seconds, 1),
        "peak_rss_tree_mib": round(peak[0] / MIB),
        "max_rss_process_mib": round(usage.ru_maxrss / 1024),  # Linux: kB
    }


def float32_baseline(data_dir: Path) -> dict:
    """Size of the first shard's records serialized as schema 1 wrote them (float32 mV
    signal, no gain or baseline) against their int16 size, framing included."""
    import numpy as np
    import tensorflow as tf

    from ecg_keras.data import adc, tfrecord

    found = json.loads((data_dir / "manifest.json").read_text())
    shard = found["shards"][0]
    options = "GZIP" if found["compression"] == "GZIP" else ""
    old = 0
    for raw in tf.data.TFRecordDataset(str(data_dir / shard["file"]), options):
        example = tf.train.Example.FromString(raw.numpy())
        feature = example.features.feature
        samples = np.frombuffer(feature["signal"].bytes_list.value[0], "<i2").reshape(-1, 12)
        gain = np.array(feature[tfrecord.GAIN].float_list.value, np.float32)
        baseline = np.array(feature[tfrecord.BASELINE].int64_list.value)
        mv = adc.to_mv(samples, gain, baseline)
        feature["signal"].bytes_list.value[0] = mv.astype("<f4").tobytes()
        del feature[tfrecord.GAIN], feature[tfrecord.BASELINE]
        old += len(example.SerializeToString()) + 16  # TFRecord framing: length + 2 CRCs
    return {"shard": shard["file"], "int16_bytes": shard["bytes"], "float32_bytes": old}


def bench_rate(args, rate: int, folder: Path, logs: Path) -> dict:
    """prepare, sizes, one epoch with and without the cache, evaluate, at one rate."""
    py, work = sys.executable, Path(args.work_dir)
    data = work / f"tfrecords{rate}"
    prepare = [py, "-m", "ecg_keras.prepare", f"--ptbxl_dir={folder}", f"--output_dir={data}"]
    prepare += [f"--sampling_rate={rate}", "--overwrite"]
    result = {"prepare": measure(f"prepare{rate}", prepare, logs)}
    found = json.loads((data / "manifest.json").read_text())
    seconds = found["seconds"]  # prepare's own timing: reading to the last shard's hash
    result["prepare"].update(records=found["num_records"], seconds=seconds)
    result["prepare"]["records_per_s"] = round(found["num_records"] / seconds, 1)
    size = sum(s["bytes"] for s in found["shards"])
    base = float32_baseline(data)
    ratio = base["int16_bytes"] / base["float32_bytes"]
    result["tfrecords"] = {
        "bytes": size,
        "bytes_per_record": round(size / found["num_records"]),
        "float32_bytes_estimate": round(size / ratio),
        "ratio_int16_vs_float32": round(ratio, 3),
        "baseline_measured_on": base,
    }
    train_records = sum(found["folds"].get(str(f), 0) for f in ptbxl.TRAIN_FOLDS)
    for cache in ("cache", "nocache"):
        if "train" in args.skip:
            break
        run = work / f"run{rate}_{cache}"
        command = [py, "-m", "ecg_keras.train", f"--flagfile={args.config}", f"--data_dir={data}"]
        command += [f"--epochs={args.epochs}", f"--workdir={run}", f"--{cache}", "--overwrite"]
        figures = measure(f"train{rate}_{cache}", command, logs)
        metrics = json.loads((run / "metrics.json").read_text())
        figures["fit_seconds"] = metrics["train_seconds"]  # the epochs + validation only
        figures["train_records_per_s"] = round(
            args.epochs * train_records / figures["fit_seconds"], 1
        )
        result[f"train_{cache}"] = figures
    if "evaluate" not in args.skip and "train" not in args.skip:
        command = [py, "-m", "ecg_keras.evaluate", f"--workdir={work / f'run{rate}_cache'}"]
        result["evaluate"] = measure(f"evaluate{rate}", command, logs)
    result["train_records"] = train_records
    return result


def memory_total_gib() -> float | None:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 2**20, 1)
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ptbxl_dir", default=str(ptbxl.default_dir()))
    parser.add_argument("--work_dir", default="/tmp/ecg_scale_bench")
    parser.add_argument("--rates", default="100,500")
    parser.add_argument("--records", type=int, default=21837)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--config", default="configs/experiments/complex_bf16.cfg")
    parser.add_argument("--skip", default="", help="comma list: train, evaluate")
    args = parser.parse_args()
    args.skip = set(filter(None, args.skip.split(",")))
    rates = [int(r) for r in args.rates.split(",")]
    if bad := [r for r in rates if r not in ptbxl.SAMPLING_RATES]:
        parser.error(f"--rates: {bad} not in {ptbxl.SAMPLING_RATES}")
    work, src = Path(args.work_dir), Path(args.ptbxl_dir)
    folder, logs = work / f"ptbxl_{args.records}", work / "logs"
    log(f"building {folder} ({args.records} records at {rates} Hz)")
    built = build_folder(src, folder, args.records, rates)
    results = {str(rate): bench_rate(args, rate, folder, logs) for rate in rates}
    peaks = [v["peak_rss_tree_mib"] for r in results.values() for v in r.values()
             if isinstance(v, dict) and "peak_rss_tree_mib" in v]  # fmt: skip
    total = memory_total_gib()
    print(json.dumps({
        "benchmark": "scale",
        "machine": {**cpu_info(), "memory_gib": total},
        "records": args.records,
        "folder": {"path": str(folder), **built},
        "rates": results,
        "peak_rss_tree_mib_max": max(peaks),
        "fits_in_memory": total is not None and max(peaks) / 1024 < total,
        "baseline": "the same records' TFRecords with float32 signals (schema 1), re-serialized",
        "ratio": {rate: r["tfrecords"]["ratio_int16_vs_float32"] for rate, r in results.items()},
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
