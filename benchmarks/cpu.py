"""The machine a speed figure was measured on: CPU model name and its AVX-512 flags."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_info() -> dict:
    """{"cpu": model name, "cores": os.cpu_count(), "avx512": sorted AVX-512 flags, "amx":
    sorted AMX flags} from /proc/cpuinfo (what ``lscpu`` reads); empty lists elsewhere."""
    model, flags = platform.processor() or "unknown", set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
                break
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "avx512": sorted(f for f in flags if f.startswith("avx512")),
        "amx": sorted(f for f in flags if f.startswith("amx")),
    }
