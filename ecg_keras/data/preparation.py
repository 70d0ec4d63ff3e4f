"""PTB-XL -> sharded TFRecords grouped by ``strat_fold``, plus ``manifest.json``.

The library behind ``python -m ecg_keras.prepare``.

Worker processes read and check the WFDB records (the slow part); the main process
serializes, writes and hashes. Every shard is written under a temporary name and renamed when
complete, and ``manifest.json`` is written last, atomically: a directory with a manifest is a
complete dataset, and one without is not.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import multiprocessing
import os
import time
from pathlib import Path

import numpy as np

from ecg_keras import atomic
from ecg_keras.data import adc, ptbxl
from ecg_keras.data.manifest import MANIFEST, SCHEMA_VERSION, sha256_file


@dataclasses.dataclass(frozen=True)
class PrepareConfig:
    """Settings of one prepare run."""

    ptbxl_dir: str
    output_dir: str
    sampling_rate: int = 100
    records_per_shard: int = 256  # ~12 MB shards at 100 Hz; full PTB-XL gives 9 per fold
    compression: str = "NONE"
    skip_missing: bool = False
    overwrite: bool = False
    num_workers: int = os.cpu_count() or 1

    def __post_init__(self):
        if self.sampling_rate not in ptbxl.SAMPLING_RATES:
            raise ValueError(f"--sampling_rate={self.sampling_rate}: must be 100 or 500")
        if self.records_per_shard < 1:
            raise ValueError(f"--records_per_shard={self.records_per_shard}: must be >= 1")
        if self.compression not in ("GZIP", "NONE"):
            raise ValueError(f"--compression={self.compression}: must be GZIP or NONE")

    def identity(self) -> dict:
        """The settings that define the output; a rerun with the same identity is a no-op."""
        return {
            "ptbxl_dir": str(Path(self.ptbxl_dir).resolve()),
            "sampling_rate": self.sampling_rate,
            "records_per_shard": self.records_per_shard,
            "compression": self.compression,
            "skip_missing": self.skip_missing,
        }


def _is_complete(output_dir: Path, manifest: dict) -> bool:
    return all(
        (output_dir / s["file"]).is_file() and (output_dir / s["file"]).stat().st_size == s["bytes"]
        for s in manifest["shards"]
    )


def _check_output(config: PrepareConfig, out: Path) -> dict | None:
    """Returns the existing manifest when the output is already complete, else clears it."""
    manifest_path = out / MANIFEST
    if manifest_path.is_file() and not config.overwrite:
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("config") != config.identity():
            raise ValueError(
                f"{out} holds a dataset prepared with other settings "
                f"({manifest.get('config')}); pass --overwrite to replace it"
            )
        if manifest.get("schema_version") != SCHEMA_VERSION:
            # Same settings, older format (e.g. float32 signals): rewrite it in this one.
            print(
                f"{out} holds TFRecord schema version {manifest.get('schema_version')}; "
                f"preparing it again as version {SCHEMA_VERSION}"
            )
        elif _is_complete(out, manifest):
            return manifest
    # From here the directory is not a complete dataset: drop the manifest first so that a
    # killed run can never leave an old manifest describing new shards.
    manifest_path.unlink(missing_ok=True)
    for stale in list(out.glob("fold*-*-of-*.tfrecord*")) + list(out.glob(".*.tmp*")):
        stale.unlink()
    return None


def _plan(config: PrepareConfig, db) -> tuple[list[tuple[int, list[int]]], list[int]]:
    """Finds missing records and groups the rest into shards: [(fold, [ecg_id, ...])]."""
    missing = []
    for ecg_id, row in zip(db.index, db.itertuples(), strict=True):
        path = ptbxl.record_path(config.ptbxl_dir, row, config.sampling_rate)
        if not (path.with_suffix(".hea").is_file() and path.with_suffix(".dat").is_file()):
            missing.append(int(ecg_id))
    if missing and not config.skip_missing:
        path = ptbxl.record_path(config.ptbxl_dir, db.loc[missing[0]], config.sampling_rate)
        raise ptbxl.PtbxlError(
            f"ecg_id {missing[0]}: record {path} not found ({len(missing)} of {len(db)} records "
            f"listed in {ptbxl.DATABASE_CSV} are missing); pass --skip_missing to leave them out"
        )
    present = db.drop(index=missing)
    shards = []
    for fold, group in present.groupby("strat_fold"):
        ids = [int(i) for i in group.index]
        for start in range(0, len(ids), config.records_per_shard):
            shards.append((int(fold), ids[start : start + config.records_per_shard]))
    return shards, missing


def prepare(config: PrepareConfig) -> dict:
    """Writes the TFRecord shards and the manifest; returns the manifest.

    Raises:
      ptbxl.PtbxlError: missing or bad PTB-XL input (nothing complete-looking is left behind).
      ValueError: bad settings, or an output directory holding a different dataset.
    """
    src, out = Path(config.ptbxl_dir), Path(config.output_dir)
    if not src.is_dir():
        raise ptbxl.PtbxlError(f"{src}: PTB-XL folder not found; {ptbxl.DOWNLOAD_HINT}")
    tasks, db = ptbxl.load_tasks(src), ptbxl.load_database(src)
    out.mkdir(parents=True, exist_ok=True)
    existing = _check_output(config, out)
    if existing is not None:
        print(
            f"{out} is already complete ({existing['num_records']} records); nothing to do. "
            "Pass --overwrite to prepare it again."
        )
        return existing

    plan, missing = _plan(config, db)
    start = time.perf_counter()
    totals = _Totals(tasks.classes)
    shards = _write_shards(config, plan, db, tasks, totals)
    seconds = time.perf_counter() - start
    folds = {}
    for shard in shards:
        folds[str(shard["fold"])] = folds.get(str(shard["fold"]), 0) + shard["num_records"]
    num_records = sum(folds.values())
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "config": config.identity(),
        "num_records": num_records,
        "sampling_rate": config.sampling_rate,
        "num_samples": config.sampling_rate * ptbxl.RECORD_SECONDS,
        "leads": list(ptbxl.LEADS),
        "compression": config.compression,
        "folds": folds,
        "tasks": totals.tasks(),
        "skipped_ecg_ids": missing,
        "csv_sha256": {n: sha256_file(src / n) for n in (ptbxl.DATABASE_CSV, ptbxl.STATEMENTS_CSV)},
        "shards": shards,
        "seconds": round(seconds, 2),
    }
    atomic.write_json(out / MANIFEST, manifest)
    total = sum(s["bytes"] for s in shards)
    print(
        f"wrote {num_records} records in {len(shards)} shards ({total / 1e6:.1f} MB) to {out} "
        f"in {seconds:.1f} s ({num_records / seconds:.0f} records/s); "
        f"folds {folds}; skipped {len(missing)} missing records"
    )
    return manifest


class _Totals:
    """Per-class counts, gathered while writing."""

    def __init__(self, classes: dict[str, tuple[str, ...]]):
        self.classes = classes
        self.counts = {t: np.zeros(len(c), np.int64) for t, c in classes.items()}
        self.unlabeled = dict.fromkeys(classes, 0)

    def add(self, labels: dict[str, np.ndarray]) -> None:
        """Counts one record: ``labels`` task -> multi-hot int [classes]."""
        for task, vec in labels.items():
            self.counts[task] += vec
            self.unlabeled[task] += int(not vec.any())

    def tasks(self) -> dict:
        return {
            t: {
                "classes": list(c),
                "counts": dict(zip(c, self.counts[t].tolist(), strict=True)),
                "unlabeled": self.unlabeled[t],
            }
            for t, c in self.classes.items()
        }


def _write_shards(config, plan, db, tasks, totals: _Totals) -> list[dict]:
    """Reads records in worker processes and writes ``plan``'s shards in order."""
    # TensorFlow is imported inside functions, not at the top: spawned readers re-import this
    # module, and importing TF there would cost each of them seconds and hundreds of MB.
    import tensorflow as tf
    from tqdm import tqdm

    from ecg_keras.data import tfrecord

    out, rate = Path(config.output_dir), config.sampling_rate
    rows = dict(zip(db.index, db.itertuples(), strict=True))  # .loc per record is slow
    fields = tfrecord.schema(rate, {t: len(c) for t, c in tasks.classes.items()})
    jobs = [
        (str(ptbxl.record_path(config.ptbxl_dir, rows[i], rate)), rate, i)
        for _, ids in plan
        for i in ids
    ]
    per_fold = {}
    for fold, _ in plan:
        per_fold[fold] = per_fold.get(fold, 0) + 1
    options = tf.io.TFRecordOptions(compression_type="GZIP" if config.compression == "GZIP" else "")
    shards = []
    with contextlib.ExitStack() as stack:
        if config.num_workers > 1:
            context = multiprocessing.get_context("spawn")  # never fork a process that has TF
            pool = stack.enter_context(context.Pool(config.num_workers))
            signals = pool.imap(adc.read_adc_job, jobs, chunksize=8)
        else:  # in-process: no spawn cost for tiny inputs and tests
            signals = map(adc.read_adc_job, jobs)
        # Computed while the readers start: everything about a record but its signal.
        all_ids = [i for _, fold_ids in plan for i in fold_ids]
        metadata = {i: tfrecord.record_values(rows[i], i, tasks, rate) for i in all_ids}
        bar = stack.enter_context(
            tqdm(total=len(jobs), unit="records", desc="prepare", mininterval=1)
        )
        for fold, ids in plan:
            index = sum(1 for s in shards if s["fold"] == fold)
            name = tfrecord.shard_name(fold, index, per_fold[fold], config.compression)
            with (
                atomic.replacing(out / name) as tmp,
                tf.io.TFRecordWriter(str(tmp), options) as writer,
            ):
                for ecg_id in ids:
                    got_id, stored = next(signals)
                    assert got_id == ecg_id, (got_id, ecg_id)  # imap keeps the job order
                    values, labels = metadata.pop(ecg_id)
                    values["signal"] = stored.samples
                    values[tfrecord.GAIN], values[tfrecord.BASELINE] = stored.gain, stored.baseline
                    writer.write(tfrecord.make_example(values, fields))
                    totals.add(labels)
                    bar.update()
            stat = (out / name).stat()
            shards.append(
                {
                    "file": name,
                    "fold": fold,
                    "num_records": len(ids),
                    "bytes": stat.st_size,
                    "sha256": sha256_file(out / name),
                }
            )
    return shards
