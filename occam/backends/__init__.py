"""Registered backends, and the choice of one for ``backend="auto"``."""

from __future__ import annotations

import os
from collections.abc import Mapping

from occam.backends.base import Backend
from occam.backends.embedded import EmbeddedBackend
from occam.backends.kubernetes import KubernetesBackend
from occam.errors import ConfigError

BACKENDS: dict[str, type[Backend]] = {}


def register(backend: type[Backend]) -> type[Backend]:
    BACKENDS[backend.name] = backend
    return backend


register(EmbeddedBackend)
register(KubernetesBackend)


def select_backend(name: str, environ: Mapping[str, str] | None = None) -> type[Backend]:
    """The backend class for ``name``; ``"auto"`` picks the highest-priority one that detects its environment."""
    env = os.environ if environ is None else environ
    if name == "auto":
        detected = [b for b in BACKENDS.values() if b.detect(env)]
        if not detected:
            return EmbeddedBackend
        return max(detected, key=lambda b: b.priority)
    try:
        return BACKENDS[name]
    except KeyError:
        known = ", ".join(sorted([*BACKENDS, "auto"]))
        raise ConfigError(f"backend={name!r} is not known; choose one of: {known}") from None


__all__ = ["BACKENDS", "Backend", "register", "select_backend"]
