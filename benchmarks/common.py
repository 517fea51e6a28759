"""What every benchmark table is headed by: the command, commit, machine and library versions."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version


def _version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return "absent"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            return next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def memory_gib() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


def header(extra: str = "") -> str:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    versions = ", ".join(f"{d} {_version(d)}" for d in ("torch", "onnxruntime", "transformers", "numpy"))
    lines = [
        f"command: `python {' '.join(sys.argv)}`",
        f"commit: {commit or 'unknown'}",
        f"machine: {cpu_model()}, {os.cpu_count()} cores, {memory_gib():.0f} GiB RAM, no GPU",
        f"versions: Python {platform.python_version()}, {versions}",
    ]
    if extra:
        lines.append(extra)
    return "\n".join(f"- {line}" for line in lines)
