"""What this machine offers: cores, memory, GPUs. Read once per call, never cached."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class MachineResources:
    cores: int
    memory_bytes: int
    gpus: int


def _visible_gpu_count() -> int:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return 0
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=15,
            check=True,
        ).stdout
    except (subprocess.SubprocessError, OSError):
        return 0
    count = len([line for line in out.splitlines() if line.strip()])
    if visible is not None:
        count = min(count, len([v for v in visible.split(",") if v.strip()]))
    return count


def detect() -> MachineResources:
    """Resources usable by this process (CPU affinity and cgroup-limited memory aware where possible)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return MachineResources(cores=cores, memory_bytes=psutil.virtual_memory().total, gpus=_visible_gpu_count())
