"""Layered configuration: package defaults, then environment variables, then arguments, for every setting.

A key ``name`` is read from ``OCCAM_<NAME>`` (``OCCAM_BACKEND``, ``OCCAM_CORES``...); a key ``kubernetes.<name>``,
a setting of the Kubernetes backend (:class:`occam.kubernetes.settings.KubernetesSettings`), from
``OCCAM_K8S_<NAME>``. The spawner sets the environment of a notebook pod (``OCCAM_K8S_NAMESPACE``...); anything
passed to :func:`occam.start_cluster` (or to ``settings_from_env``) wins over both.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from occam.contract import ENV_PREFIX, K8S_ENV_PREFIX
from occam.errors import ConfigError

#: Package defaults, the only place any is written. None: no default (unset, or required where it is used).
DEFAULTS: dict[str, Any] = {
    "backend": "auto",
    "n": 2,
    "cores": 1,
    "memory": "1g",
    "timeout": 180.0,
    "cache_dir": "~/.cache/occam",
    "checkpoint_dir": "~/occam-checkpoints",
    # Minutes a cluster may sit with no Spark job and no fit before its executors are released; 0: never.
    "executor_idle_minutes": 0.0,
    # Training runs (occam.tracking): TensorBoard logs and MLflow artifacts under runs_dir (None: <cache_dir>/runs,
    # so on the shared work volume on Kubernetes); every fit recorded as an MLflow run unless tracking is off;
    # tracking_uri None: a SQLite store the student owns, sqlite:///<cache_dir>/mlflow.db.
    "runs_dir": None,
    "tracking": True,
    "tracking_uri": None,
    "tracking_experiment": "occam",
    # The model store (occam.models): the shared work volume's models folder on Kubernetes.
    "models_dir": "~/.cache/occam/models",
    # The course catalog of shared models (occam.models.catalog): the catalog service's URL (None: no catalog,
    # share= is recorded in the store only), the read-only mount students read it from, the largest upload.
    "catalog_url": None,
    "catalog_dir": None,
    "catalog_max_bytes": 512 * 1024 * 1024,
    "catalog_timeout": 120.0,
    # Model services (occam.models.serve): the largest request body, and how long start-up may take.
    "serve_max_bytes": 8 * 1024 * 1024,
    "serve_timeout": 120.0,
    # What a model service's pod on Kubernetes requests (and is limited to): the quota counts it.
    "serve_cpu": "1",
    "serve_memory": "2Gi",
    # A kept model service (serve(..., keep=True)) ends after this many minutes with no request; 0: never.
    # The hub sets it from the chart's occam.serving.keptIdleMinutes (OCCAM_SERVE_KEPT_IDLE_MINUTES).
    "serve_kept_idle_minutes": 0.0,
    # fit's live view: auto (widgets in a notebook, text elsewhere), widgets, html or text.
    "dashboard": "auto",
    # What the libraries under Occam print on the console: error (quiet), warn, info or debug (verbose=True).
    "log_level": "error",
    # The Kubernetes backend; the spawner sets the notebook pod's facts (occam.kubernetes.settings).
    "kubernetes.namespace": None,
    "kubernetes.pod_name": None,
    "kubernetes.pod_ip": None,
    "kubernetes.pod_uid": None,
    "kubernetes.executor_image": None,
    "kubernetes.gpu_executor_image": None,
    "kubernetes.image_pull_policy": "IfNotPresent",
    "kubernetes.service_account": None,
    "kubernetes.api_server": "https://kubernetes.default.svc",
    "kubernetes.user": None,
    "kubernetes.gpu_node_selector": None,
    "kubernetes.gpu_tolerations": None,
    "kubernetes.shared_volume": None,
    "kubernetes.shared_path": None,
    "kubernetes.data_volume": None,
    "kubernetes.data_path": None,
    "kubernetes.catalog_volume": None,
    "kubernetes.catalog_path": None,
}

#: Key prefix (before the last dot) -> the prefix of its environment variables.
SECTIONS = {"": ENV_PREFIX, "kubernetes": K8S_ENV_PREFIX}


def boolean(text: str) -> bool:
    """``1/true/yes/on`` or ``0/false/no/off`` (any case) as a bool; anything else is a ``ValueError``."""
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"{text!r} is not one of 1/true/yes/on or 0/false/no/off")


#: What ``log_level`` may be, quietest first: which of the libraries' lines (Spark's log, TensorFlow's C++ log)
#: reach the console. Occam's own lines are always printed.
LOG_LEVELS = ("error", "warn", "info", "debug")
#: ``TF_CPP_MIN_LOG_LEVEL`` for each log level: 2 hides TensorFlow's start-up notices (CPU features, oneDNN).
TF_CPP_LEVELS = {"error": "2", "warn": "1", "info": "0", "debug": "0"}


def _log_level(text: str) -> str:
    level = text.strip().lower()
    if level not in LOG_LEVELS:
        raise ConfigError(f"{env_key('log_level')}={text!r} is not one of {', '.join(LOG_LEVELS)}; fix or unset it")
    return level


_PARSERS: dict[str, Callable[[str], Any]] = {
    "n": int,
    "cores": int,
    "timeout": float,
    "executor_idle_minutes": float,
    "tracking": boolean,
    "serve_max_bytes": int,
    "catalog_max_bytes": int,
    "catalog_timeout": float,
    "serve_timeout": float,
    "serve_kept_idle_minutes": float,
    "log_level": _log_level,
}


def env_key(key: str) -> str:
    """The environment variable of ``key``: ``cores`` -> ``OCCAM_CORES``, ``kubernetes.user`` -> ``OCCAM_K8S_USER``."""
    section, _, name = key.rpartition(".")
    return SECTIONS[section] + name.upper()


def get(
    key: str,
    override: Any = None,
    environ: Mapping[str, str] | None = None,
    *,
    parse: Callable[[str], Any] | None = None,
) -> Any:
    """Return the value of ``key``: ``override`` if given, else its environment variable, else the default.

    An empty (or blank) variable counts as unset. ``parse`` turns the variable's text into the value (default:
    the key's own parser, else the text); a ``ValueError`` from it becomes a :class:`~occam.errors.ConfigError`
    naming the variable.
    """
    if key not in DEFAULTS:
        raise KeyError(f"unknown Occam setting {key!r}; known settings: {', '.join(sorted(DEFAULTS))}")
    if override is not None:
        return override
    env = os.environ if environ is None else environ
    raw = (env.get(env_key(key)) or "").strip()
    if not raw:
        return DEFAULTS[key]
    parser = parse or _PARSERS.get(key, str)
    try:
        return parser(raw)
    except ConfigError:
        raise  # the parser's own message names the variable and the fix
    except ValueError:
        raise ConfigError(
            f"environment variable {env_key(key)}={raw!r} is not a valid {getattr(parser, '__name__', 'value')}; "
            f"fix or unset it (default: {DEFAULTS[key]!r})"
        ) from None


def path(key: str, override: str | os.PathLike[str] | None = None) -> str:
    """Like :func:`get` for directory settings, with ``~`` expanded."""
    return os.path.expanduser(os.fspath(get(key, override)))


def log_level(verbose: bool | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The libraries' console log level: ``info`` for ``verbose=True``, else ``OCCAM_LOG_LEVEL``, else ``error``."""
    return get("log_level", "info" if verbose else None, environ)
