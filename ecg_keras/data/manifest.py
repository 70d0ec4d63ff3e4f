"""``manifest.json``: the description of a prepared dataset, and safe file writing.

A prepared folder is complete exactly when it has a manifest: ``prepare`` writes it last,
atomically. Keys other modules rely on: ``num_records``, ``sampling_rate``, ``leads``,
``folds`` (fold -> count), ``tasks`` (task -> {``classes``, ``counts``, ``unlabeled``}),
``shards`` ([{``file``, ``fold``, ``num_records``, ``bytes``, ``sha256``}]).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

MANIFEST = "manifest.json"


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def load(data_dir: str | os.PathLike) -> dict:
    """Reads ``DATA_DIR/manifest.json``.

    Raises:
      FileNotFoundError: no manifest (the folder was never prepared, or not completely).
    """
    path = Path(data_dir) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: the folder is not a complete prepared dataset; run "
            f"`python -m ecg_keras.prepare --ptbxl_dir=DIR --output_dir={data_dir}` first"
        )
    return json.loads(path.read_text())
