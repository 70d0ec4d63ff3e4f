"""PTB-XL (or a Challenge-layout folder) -> sharded TFRecords grouped by fold, plus
``manifest.json``.

The library behind ``python -m ecg_keras.prepare``. ``input_format="ptbxl"`` reads PTB-XL's
records with its own ``strat_fold``; ``"challenge"`` reads PhysioNet/CinC Challenge-layout
records (``data/challenge.py``: labels from their SNOMED-CT codes, folds drawn here, seeded and
stratified) and also writes ``records.csv`` (ecg_id -> record name, fold, codes, notes).

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
from ecg_keras.data import adc, challenge, ptbxl
from ecg_keras.data.manifest import MANIFEST, SCHEMA_VERSION, sha256_file

INPUT_FORMATS = ("ptbxl", "challenge")
RECORDS_CSV = "records.csv"


@dataclasses.dataclass(frozen=True)
class PrepareConfig:
    """Settings of one prepare run. ``ptbxl_dir`` is the input of ``input_format="ptbxl"``,
    ``input_dir`` that of ``"challenge"`` (for PTB-XL it may stand in for ``ptbxl_dir``);
    ``num_folds`` and ``fold_seed`` draw a Challenge folder's folds (PTB-XL brings its own).
    ``skip_missing`` leaves out PTB-XL records missing on disk, and Challenge records that
    cannot be read (each listed in the manifest with its error)."""

    ptbxl_dir: str | None
    output_dir: str
    sampling_rate: int = 100
    records_per_shard: int = 256  # ~12 MB shards at 100 Hz; full PTB-XL gives 9 per fold
    compression: str = "NONE"
    skip_missing: bool = False
    overwrite: bool = False
    num_workers: int = os.cpu_count() or 1
    input_format: str = "ptbxl"
    input_dir: str | None = None
    num_folds: int = 10
    fold_seed: int = 0

    def __post_init__(self):
        if self.input_format not in INPUT_FORMATS:
            raise ValueError(f"--input_format={self.input_format}: must be ptbxl or challenge")
        if self.input_format == "challenge" and not self.input_dir:
            raise ValueError("--input_dir is required with --input_format=challenge")
        if self.input_format == "ptbxl" and not self.ptbxl_dir:
            if not self.input_dir:
                raise ValueError("--ptbxl_dir (or --input_dir) is required")
            object.__setattr__(self, "ptbxl_dir", self.input_dir)
        if self.num_folds < 2:
            raise ValueError(f"--num_folds={self.num_folds}: must be >= 2")
        if self.sampling_rate not in ptbxl.SAMPLING_RATES:
            raise ValueError(f"--sampling_rate={self.sampling_rate}: must be 100 or 500")
        if self.records_per_shard < 1:
            raise ValueError(f"--records_per_shard={self.records_per_shard}: must be >= 1")
        if self.compression not in ("GZIP", "NONE"):
            raise ValueError(f"--compression={self.compression}: must be GZIP or NONE")

    @property
    def source(self) -> Path:
        """The folder read: ``ptbxl_dir`` or ``input_dir``."""
        return Path(self.input_dir if self.input_format == "challenge" else self.ptbxl_dir)

    def identity(self) -> dict:
        """The settings that define the output; a rerun with the same identity is a no-op.
        (PTB-XL's keys are those written before Challenge folders existed, so that folders
        prepared then stay complete.)"""
        if self.input_format == "challenge":
            return {
                "input_format": "challenge",
                "input_dir": str(self.source.resolve()),
                "sampling_rate": self.sampling_rate,
                "records_per_shard": self.records_per_shard,
                "compression": self.compression,
                "skip_missing": self.skip_missing,
                "num_folds": self.num_folds,
                "fold_seed": self.fold_seed,
            }
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
    (out / RECORDS_CSV).unlink(missing_ok=True)
    return None


@dataclasses.dataclass
class _Source:
    """What one input format hands the writer.

    plan: [(fold, [ecg_id, ...])] in shard order; jobs: the reader's arguments in the same
    order; read: a picklable function job -> (ecg_id, ``adc.Adc``) (raising on a bad record),
    or -> (ecg_id, ``adc.Adc`` or the error, notes) for formats that may skip records;
    metadata: a function returning ecg_id -> the example's values less the signal (labels and
    ``has_label`` included), called while the readers start; manifest: format-specific
    manifest keys; entries: a Challenge folder's ecg_id -> (``challenge.Entry``, fold).
    """

    classes: dict[str, tuple[str, ...]]
    plan: list[tuple[int, list[int]]]
    jobs: list[tuple]
    read: object
    metadata: object
    manifest: dict
    entries: dict = dataclasses.field(default_factory=dict)


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
    groups = [(int(f), [int(i) for i in g.index]) for f, g in present.groupby("strat_fold")]
    return _shards(config, groups), missing


def _shards(config: PrepareConfig, groups) -> list[tuple[int, list[int]]]:
    """[(fold, ids)] -> [(fold, ids of one shard)], ``records_per_shard`` at most."""
    shards = []
    for fold, ids in groups:
        for start in range(0, len(ids), config.records_per_shard):
            shards.append((fold, ids[start : start + config.records_per_shard]))
    return shards


def _ptbxl_source(config: PrepareConfig) -> _Source:
    src = Path(config.ptbxl_dir)
    if not src.is_dir():
        raise ptbxl.PtbxlError(f"{src}: PTB-XL folder not found; {ptbxl.DOWNLOAD_HINT}")
    tasks, db = ptbxl.load_tasks(src), ptbxl.load_database(src)
    plan, missing = _plan(config, db)
    rate = config.sampling_rate
    rows = dict(zip(db.index, db.itertuples(), strict=True))  # .loc per record is slow
    jobs = [
        (str(ptbxl.record_path(config.ptbxl_dir, rows[i], rate)), rate, i)
        for _, ids in plan
        for i in ids
    ]

    def metadata():
        from ecg_keras.data import tfrecord

        ids = [i for _, fold_ids in plan for i in fold_ids]
        return {i: tfrecord.record_values(rows[i], i, tasks, rate) for i in ids}

    manifest = {
        "skipped_ecg_ids": missing,
        "csv_sha256": {n: sha256_file(src / n) for n in (ptbxl.DATABASE_CSV, ptbxl.STATEMENTS_CSV)},
    }
    return _Source(tasks.classes, plan, jobs, adc.read_adc_job, metadata, manifest)


def _challenge_source(config: PrepareConfig) -> _Source:
    """Headers read and folds drawn here (fast); signals are read by the writer's pool."""
    from ecg_keras.data import tfrecord

    src = config.source
    names = challenge.record_names(src)
    entries = [challenge.read_entry(src, name) for name in names]
    folds = challenge.assign_folds(
        challenge.label_matrix(entries), config.num_folds, config.fold_seed
    )
    ids = {entry.name: k + 1 for k, entry in enumerate(entries)}  # ecg_id: 1.. in name order
    groups = [
        (fold, [ids[e.name] for e, f in zip(entries, folds, strict=True) if f == fold])
        for fold in range(1, config.num_folds + 1)
    ]
    plan = _shards(config, groups)
    by_id = {ids[e.name]: (e, int(f)) for e, f in zip(entries, folds, strict=True)}
    jobs = [(by_id[i][0].path, config.sampling_rate, i) for _, fold_ids in plan for i in fold_ids]

    def metadata():
        out = {}
        for ecg_id, (entry, fold) in by_id.items():
            values = {
                "ecg_id": ecg_id,
                "patient_id": ecg_id,  # the headers name no patient
                "strat_fold": fold,
                "age": tfrecord.AGE_MISSING if np.isnan(entry.age) else entry.age,
                "sex": entry.sex,
                "sampling_rate": config.sampling_rate,
            }
            for task, (vec, has_label) in entry.labels().items():
                values[f"labels/{task}"], values[f"has_label/{task}"] = vec, has_label
            out[ecg_id] = values
        return out

    return _Source(challenge.CLASSES, plan, jobs, challenge.read_job, metadata, {}, by_id)


def prepare(config: PrepareConfig) -> dict:
    """Writes the TFRecord shards and the manifest; returns the manifest.

    Raises:
      ptbxl.PtbxlError: missing or bad input records (nothing complete-looking is left
        behind); the message names the record.
      ValueError: bad settings, or an output directory holding a different dataset.
    """
    out = Path(config.output_dir)
    if config.input_format == "challenge":
        if not config.source.is_dir():
            raise ptbxl.PtbxlError(f"--input_dir={config.source}: folder not found")
        build = _challenge_source
    else:
        build = _ptbxl_source
    source = build(config)  # reads the inputs' tables before anything is written
    out.mkdir(parents=True, exist_ok=True)
    existing = _check_output(config, out)
    if existing is not None:
        print(
            f"{out} is already complete ({existing['num_records']} records); nothing to do. "
            "Pass --overwrite to prepare it again."
        )
        return existing

    start = time.perf_counter()
    totals = _Totals(source.classes)
    shards, written = _write_shards(config, source, totals)
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
        **source.manifest,
        "shards": shards,
        "seconds": round(seconds, 2),
    }
    if config.input_format == "challenge":
        manifest.update(_write_records_csv(out, source, written))
    atomic.write_json(out / MANIFEST, manifest)
    total = sum(s["bytes"] for s in shards)
    skipped = manifest.get("skipped_records", manifest.get("skipped_ecg_ids", []))
    print(
        f"wrote {num_records} records in {len(shards)} shards ({total / 1e6:.1f} MB) to {out} "
        f"in {seconds:.1f} s ({num_records / seconds:.0f} records/s); "
        f"folds {folds}; skipped {len(skipped)} records"
    )
    return manifest


def _write_records_csv(out: Path, source: _Source, written: dict) -> dict:
    """``records.csv`` (one row per record of the folder: ecg_id, name, fold, codes, written or
    the error, notes); returns the manifest's keys about it."""
    import csv

    skipped = []
    with atomic.replacing(out / RECORDS_CSV) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["ecg_id", "record", "fold", "dx", "written", "error", "notes"])
        for ecg_id, (entry, fold) in sorted(source.entries.items()):
            notes, error = written.get(ecg_id, ([], "not read"))
            dx = ";".join(map(str, entry.codes))
            row = [ecg_id, entry.name, fold, dx, int(error is None), error or "", "; ".join(notes)]
            writer.writerow(row)
            if error is not None:
                skipped.append({"ecg_id": ecg_id, "record": entry.name, "error": error})
    return {
        "records_csv": {"file": RECORDS_CSV, "sha256": sha256_file(out / RECORDS_CSV)},
        "skipped_records": skipped,
    }


class _Totals:
    """Per-class counts, gathered while writing."""

    def __init__(self, classes: dict[str, tuple[str, ...]]):
        self.classes = classes
        self.counts = {t: np.zeros(len(c), np.int64) for t, c in classes.items()}
        self.unlabeled = dict.fromkeys(classes, 0)

    def add(self, values: dict) -> None:
        """Counts one record from its example values (``labels/TASK``, ``has_label/TASK``)."""
        for task in self.classes:
            self.counts[task] += values[f"labels/{task}"]
            self.unlabeled[task] += int(not values[f"has_label/{task}"])

    def tasks(self) -> dict:
        return {
            t: {
                "classes": list(c),
                "counts": dict(zip(c, self.counts[t].tolist(), strict=True)),
                "unlabeled": self.unlabeled[t],
            }
            for t, c in self.classes.items()
        }


def _write_shards(config, source: _Source, totals: _Totals) -> tuple[list[dict], dict]:
    """Reads records in worker processes and writes the source's shards in order.

    Returns:
      (the manifest's shard entries, ecg_id -> (notes, error message or None) for formats
      whose reader reports them).

    Raises:
      ptbxl.PtbxlError: a record that cannot be read (unless ``skip_missing`` and the format
        reports errors instead of raising them).
    """
    # TensorFlow is imported inside functions, not at the top: spawned readers re-import this
    # module, and importing TF there would cost each of them seconds and hundreds of MB.
    import tensorflow as tf
    from tqdm import tqdm

    from ecg_keras.data import tfrecord

    out, plan = Path(config.output_dir), source.plan
    fields = tfrecord.schema(config.sampling_rate, {t: len(c) for t, c in source.classes.items()})
    per_fold = {}
    for fold, _ in plan:
        per_fold[fold] = per_fold.get(fold, 0) + 1
    options = tf.io.TFRecordOptions(compression_type="GZIP" if config.compression == "GZIP" else "")
    shards, written = [], {}
    with contextlib.ExitStack() as stack:
        if config.num_workers > 1 and len(source.jobs) > 1:
            context = multiprocessing.get_context("spawn")  # never fork a process that has TF
            pool = stack.enter_context(context.Pool(config.num_workers))
            signals = pool.imap(source.read, source.jobs, chunksize=8)
        else:  # in-process: no spawn cost for tiny inputs and tests
            signals = map(source.read, source.jobs)
        # Computed while the readers start: everything about a record but its signal.
        metadata = source.metadata()
        bar = stack.enter_context(
            tqdm(total=len(source.jobs), unit="records", desc="prepare", mininterval=1)
        )
        for fold, ids in plan:
            index = sum(1 for s in shards if s["fold"] == fold)
            name = tfrecord.shard_name(fold, index, per_fold[fold], config.compression)
            count = 0
            with (
                atomic.replacing(out / name) as tmp,
                tf.io.TFRecordWriter(str(tmp), options) as writer,
            ):
                for ecg_id in ids:
                    got_id, stored, *notes = next(signals)
                    assert got_id == ecg_id, (got_id, ecg_id)  # imap keeps the job order
                    bar.update()
                    values = metadata.pop(ecg_id)
                    if isinstance(stored, Exception):
                        if not config.skip_missing:
                            raise ptbxl.PtbxlError(
                                f"{stored}; pass --skip_missing to leave out records that "
                                "cannot be read"
                            )
                        written[ecg_id] = [], str(stored)
                        continue
                    if notes:
                        written[ecg_id] = notes[0], None
                    values["signal"] = stored.samples
                    values[tfrecord.GAIN], values[tfrecord.BASELINE] = stored.gain, stored.baseline
                    writer.write(tfrecord.make_example(values, fields))
                    totals.add(values)
                    count += 1
            stat = (out / name).stat()
            shards.append(
                {
                    "file": name,
                    "fold": fold,
                    "num_records": count,
                    "bytes": stat.st_size,
                    "sha256": sha256_file(out / name),
                }
            )
    return shards, written
