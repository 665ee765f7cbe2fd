"""Layered configuration: package defaults, then ``OCCAM_*`` environment variables, then arguments.

The spawner sets the environment of a notebook pod (for instance ``OCCAM_BACKEND=kubernetes``);
anything passed to :func:`occam.start_cluster` wins over both.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from occam.contract import ENV_PREFIX

#: Package defaults. Every key can be overridden by the environment variable ``OCCAM_<KEY>``.
DEFAULTS: dict[str, Any] = {
    "backend": "auto",
    "n": 2,
    "cores": 1,
    "memory": "1g",
    "timeout": 180.0,
    "cache_dir": "~/.cache/occam",
    "checkpoint_dir": "~/occam-checkpoints",
}

_PARSERS = {"n": int, "cores": int, "timeout": float}


def env_key(key: str) -> str:
    return ENV_PREFIX + key.upper()


def get(key: str, override: Any = None, environ: Mapping[str, str] | None = None) -> Any:
    """Return the value of ``key``: ``override`` if given, else ``OCCAM_<KEY>``, else the default."""
    if key not in DEFAULTS:
        raise KeyError(f"unknown Occam setting {key!r}; known settings: {', '.join(sorted(DEFAULTS))}")
    if override is not None:
        return override
    env = os.environ if environ is None else environ
    raw = env.get(env_key(key))
    if raw is None or raw == "":
        return DEFAULTS[key]
    parse = _PARSERS.get(key, str)
    try:
        return parse(raw)
    except ValueError:
        from occam.errors import ConfigError

        raise ConfigError(
            f"environment variable {env_key(key)}={raw!r} is not a valid {parse.__name__}; "
            f"fix or unset it (default: {DEFAULTS[key]!r})"
        ) from None


def path(key: str, override: str | os.PathLike[str] | None = None) -> str:
    """Like :func:`get` for directory settings, with ``~`` expanded."""
    return os.path.expanduser(os.fspath(get(key, override)))
