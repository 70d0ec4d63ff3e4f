"""Export a trained run for TF Serving and TFLite, and check every artifact on real records.

The library behind ``python -m ecg_keras.export``.

Writes ``OUTPUT_DIR/VERSION/`` (TF Serving's layout; without ``--version`` the next number
after the highest existing one, and an existing version is never replaced): the SavedModel
(signature ``serving_default``: ``ecg`` float32 [batch, 10 s x rate, 12] mV -> ``probabilities``,
``labels``, ``window_probabilities``), ``assets.extra/metadata.json`` and
``assets.extra/tf_serving_warmup_requests``, ``tflite/MODE.tflite`` with ``tflite/metadata.json``,
and ``export.json`` (every artifact, its size and its check). Everything is written in a
hidden temporary folder, checked (``export_check``), then renamed into place, so TF Serving
never sees a half-written or failing version. A failing check exits with code 1 and leaves the
artifacts in ``OUTPUT_DIR/.failed-VERSION/`` for inspection. Takes about a minute for
``vgg_small`` on 2 cores.

``--workdir`` may also be an ensemble's output (``python -m ecg_keras.ensemble``): one set of
artifacts whose signature runs every member and averages their probabilities, with the
ensemble's thresholds, checked against the mean of the members' own predictions
(``inference.Predictor``).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
import time
from pathlib import Path

from ecg_keras import atomic
from ecg_keras.deploy import export_check, lite, runtime, serving
from ecg_keras.filenames import EXPORT_JSON


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    """One export. ``model`` defaults to ``WORKDIR/model.keras``; without ``workdir`` the run
    is the folder that holds ``model`` (its ``run.json`` and ``metrics.json`` are needed)."""

    output_dir: str
    workdir: str | None = None
    model: str | None = None
    version: int | None = None
    tflite: tuple[str, ...] = lite.MODES
    data_dir: str | None = None  # prepared TFRecords; default: the run's
    calibration_records: int = 200  # training-fold records that calibrate int8

    def __post_init__(self):
        if not self.workdir and not self.model:
            raise ValueError("pass --workdir=runs/NAME or --model=FILE.keras")
        unknown = [m for m in self.tflite if m not in lite.MODES]
        if unknown:
            raise ValueError(f"--tflite={','.join(self.tflite)}: unknown {unknown}; {lite.MODES}")
        if self.version is not None and self.version < 1:
            raise ValueError(f"--version={self.version}: must be >= 1")
        if self.calibration_records < 1:
            raise ValueError(f"--calibration_records={self.calibration_records}: must be >= 1")


def versions(output_dir) -> list[int]:
    """The version numbers present in ``output_dir`` (its all-digit subfolders)."""
    path = Path(output_dir)
    if not path.is_dir():
        return []
    return sorted(int(p.name) for p in path.iterdir() if p.is_dir() and p.name.isdigit())


def resolve_version(output_dir, requested: int | None) -> int:
    """``requested`` if free, else ValueError; without it, one more than the highest."""
    present = versions(output_dir)
    if requested is None:
        return (present[-1] + 1) if present else 1
    if requested in present:
        raise ValueError(
            f"--version={requested}: {Path(output_dir) / str(requested)} exists and is never "
            f"overwritten; omit --version to take {present[-1] + 1}"
        )
    return requested


def _progress(start: float, message: str) -> None:
    print(f"[export {time.perf_counter() - start:6.1f} s] {message}", file=sys.stderr, flush=True)


def _write_artifacts(tmp: Path, source, config: ExportConfig, name: str, version: int, log):
    """SavedModel, metadata, warm-up file and the TFLite modes of ``source`` (the
    ``inference.Predictor`` exported) into ``tmp``."""
    run_config = source.config
    calibration = None
    if "int8" in config.tflite:
        calibration = export_check.load_records(
            source.run, run_config.train_folds, config.calibration_records, run_config.seed
        ).signals
    meta = {**source.metadata, "name": name, "version": version}
    log(f"writing the SavedModel (version {version})")
    serving.write_saved_model(tmp, source.endpoint, run_config)
    runtime.metadata_path(tmp).parent.mkdir()
    atomic.write_json(runtime.metadata_path(tmp), meta)
    serving.write_warmup(tmp / runtime.ASSETS_EXTRA / serving.WARMUP, name, meta["input_samples"])
    tflite_dir = tmp / "tflite"
    tflite_dir.mkdir()
    atomic.write_json(tflite_dir / serving.METADATA, meta)
    for mode in config.tflite:
        note = f", calibrated on {len(calibration)} training records" if mode == "int8" else ""
        log(f"converting to TFLite {mode}{note}")
        (tflite_dir / f"{mode}.tflite").write_bytes(lite.convert(tmp, mode, calibration))


def _publish(tmp: Path, output_dir: Path, version: int, result: dict) -> None:
    """Renames ``tmp`` to ``OUTPUT_DIR/VERSION``, or, when a check failed, to
    ``OUTPUT_DIR/.failed-VERSION`` and raises ``CheckError`` naming every failure."""
    if not result["passed"]:
        failed = output_dir / f".failed-{version}"
        shutil.rmtree(failed, ignore_errors=True)
        os.replace(tmp, failed)
        bad = [a for a in result["artifacts"] if not a["check"]["passed"]]
        raise export_check.CheckError(
            f"check failed for {[a['name'] for a in bad]}; nothing published, artifacts and "
            f"{EXPORT_JSON} kept in {failed}: "
            + "; ".join(f"{a['name']}: {', '.join(a['check']['failures'])}" for a in bad)
        )
    try:
        os.rename(tmp, output_dir / str(version))  # fails rather than replace a version
    except OSError as e:
        raise ValueError(f"{output_dir / str(version)} appeared during the export: {e}") from None


def export(config: ExportConfig) -> dict:
    """Writes, checks and publishes one version. Returns the export.json content.

    Raises:
      ValueError / FileNotFoundError: bad flags, a missing run, an existing --version.
      export_check.CheckError: an artifact failed its check (nothing is published).
    """
    from ecg_keras.inference.predictor import Predictor

    start = time.perf_counter()

    def log(message):
        _progress(start, message)

    root = Path(config.workdir) if config.workdir else Path(config.model).parent
    source = Predictor.from_workdir(root, config.model, config.data_dir)
    output_dir = Path(config.output_dir)
    version = resolve_version(output_dir, config.version)
    folds = tuple(source.config.test_folds)
    log(f"reading the check records (folds {list(folds)}) and calibration records")
    records = export_check.load_records(source.run, folds)
    output_dir.mkdir(parents=True, exist_ok=True)
    tmp = output_dir / f".export-{version}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _write_artifacts(tmp, source, config, output_dir.name, version, log)
        result = export_check.check_artifacts(tmp, source, config.tflite, records, log)
        result.update(name=output_dir.name, version=version, source=source.info)
        atomic.write_json(tmp / EXPORT_JSON, result)
        _publish(tmp, output_dir, version, result)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log(f"published {output_dir / str(version)}")
    return result
