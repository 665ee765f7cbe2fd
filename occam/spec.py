"""The validated description of a cluster request, shared by every backend."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field

from occam.errors import ConfigError

_MEMORY_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_memory(value: str | int) -> int:
    """Bytes in a Spark-style size: ``"512m"``, ``"2g"``, ``"1.5g"``, ``"2Gi"`` or a plain number of bytes."""
    if isinstance(value, bool):
        raise ConfigError(f"memory={value!r} is not a size; write it like '1g' or '512m'")
    if isinstance(value, int):
        size = value
    else:
        match = _MEMORY_RE.match(str(value))
        if not match:
            raise ConfigError(f"memory={value!r} is not a size; write it like '1g' or '512m'")
        size = int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    if size < 256 << 20:
        raise ConfigError(f"memory={value!r} is below the 256m a Spark executor needs; ask for at least '512m'")
    return size


def format_memory(size: int) -> str:
    """Spark's notation for a size in bytes, rounded down to whole MiB: ``1536m``, ``2g``."""
    mib = size >> 20
    return f"{mib >> 10}g" if mib % 1024 == 0 else f"{mib}m"


def new_cluster_name() -> str:
    return "occam-" + uuid.uuid4().hex[:8]


@dataclass(frozen=True)
class ClusterSpec:
    """What the user asked for, checked for shape (backends check it against their capacity)."""

    n: int
    cores: int = 1
    memory_bytes: int = 1 << 30
    gpu: bool = False
    timeout: float = 180.0
    name: str = field(default_factory=new_cluster_name)
    #: The libraries' console log level (:data:`occam.config.LOG_LEVELS`): Spark's driver log and TensorFlow's
    #: C++ log below it go to the cluster's log file, not the notebook.
    log_level: str = "error"

    @property
    def memory(self) -> str:
        return format_memory(self.memory_bytes)


def make_spec(
    n: object, *, cores: object, memory: str | int, gpu: bool, timeout: object, name: str | None = None
) -> ClusterSpec:
    """Check the shape of a request (types and lower bounds) and return its :class:`ClusterSpec`."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise ConfigError(f"n={n!r}: the number of executors must be a whole number, e.g. start_cluster(n=2)")
    if n < 1:
        raise ConfigError(f"n={n}: a cluster needs at least one executor; use start_cluster(n=1) or more")
    if isinstance(cores, bool) or not isinstance(cores, int) or cores < 1:
        raise ConfigError(f"cores={cores!r}: each executor needs a whole number of cores, at least 1")
    if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0:
        raise ConfigError(f"timeout={timeout!r}: give the start-up limit in seconds, e.g. timeout=180")
    if not isinstance(gpu, bool):
        raise ConfigError(f"gpu={gpu!r}: pass gpu=True for one GPU per executor, or gpu=False")
    return ClusterSpec(
        n=n,
        cores=cores,
        memory_bytes=parse_memory(memory),
        gpu=gpu,
        timeout=float(timeout),
        name=name or new_cluster_name(),
    )
