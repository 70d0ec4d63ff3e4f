"""``manifest.json``: the description of a prepared dataset, and safe file writing.

A prepared folder is complete exactly when it has a manifest: ``prepare`` writes it last,
atomically. Keys other modules rely on: ``num_records``, ``sampling_rate``, ``leads``,
``folds`` (fold -> count), ``tasks`` (task -> {``classes``, ``counts``, ``unlabeled``}),
``shards`` ([{``file``, ``fold``, ``num_records``, ``bytes``, ``sha256``}]), ``schema_version``
(``SCHEMA_VERSION``; ``load`` refuses any other).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path

MANIFEST = "manifest.json"
# The TFRecord schema (``data/tfrecord.py``) that this code writes and reads. 1: float32 mV;
# 2: int16 ADC samples with each lead's gain and baseline (half the size, same parsed values).
SCHEMA_VERSION = 2


class ManifestError(ValueError):
    """A prepared folder this code cannot read; the message names the folder and the fix."""


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


@functools.lru_cache(maxsize=64)
def _parsed(path: str, mtime_ns: int, size: int) -> dict:
    """The manifest at ``path``, parsed once per process and version of the file (a rewritten
    manifest has another mtime or size, so ``prepare --overwrite`` is seen at once)."""
    del mtime_ns, size
    return json.loads(Path(path).read_text())


def load(data_dir: str | os.PathLike) -> dict:
    """Reads ``DATA_DIR/manifest.json``, parsed once per process and file version: treat the
    returned dict as read-only (every reader shares it).

    Raises:
      FileNotFoundError: no manifest (the folder was never prepared, or not completely).
      ManifestError: a folder prepared with another TFRecord schema (an older ``prepare``).
    """
    path = Path(data_dir) / MANIFEST
    try:
        stat = path.stat()
    except FileNotFoundError:
        stat = None
    if stat is None or not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: the folder is not a complete prepared dataset; run "
            f"`python -m ecg_keras.prepare --ptbxl_dir=DIR --output_dir={data_dir}` first"
        )
    manifest = _parsed(str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        source = manifest.get("config", {}).get("ptbxl_dir", "DIR")
        rate = manifest.get("sampling_rate", 100)
        rate_flag = f" --sampling_rate={rate}" if rate != 100 else ""
        raise ManifestError(
            f"{data_dir} was prepared with TFRecord schema version {version} "
            f"({'float32 mV signals' if version == 1 else 'unknown'}); this code reads version "
            f"{SCHEMA_VERSION} (int16 samples with their gain, half the size). Prepare it again: "
            f"`python -m ecg_keras.prepare --ptbxl_dir={source} --output_dir={data_dir}{rate_flag}`"
        )
    return manifest
