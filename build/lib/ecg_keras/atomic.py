"""Files that appear whole or not at all: written under a hidden temporary name in the target's
folder, then renamed over it (``os.replace`` is atomic within one file system). A reader, TF
Serving or a resumed run never sees half a file; after an error nothing is left behind and
the previous version of the file, if any, is untouched.

    with atomic.replacing(path) as tmp:  # any writer that takes a path
        frame.to_csv(tmp)
    atomic.write_text(path, text); atomic.write_json(path, obj)
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path


def temporary_name(path: str | os.PathLike) -> Path:
    """``DIR/.STEM.PID.tmpSUFFIX`` beside ``path``: hidden, unique per process, and with the
    target's suffix, so writers that choose a format by extension (matplotlib) still do."""
    path = Path(path)
    return path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")


@contextlib.contextmanager
def replacing(path: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary path; when the block ends without an error it replaces ``path``."""
    path = Path(path)
    tmp = temporary_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | os.PathLike, text: str) -> None:
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj) -> None:
    """``obj`` as indented JSON with a final newline."""
    write_text(path, json.dumps(obj, indent=2) + "\n")
