"""Where a student's training runs live: every answer from :mod:`occam.config`, nothing created here.

``runs_dir`` (``OCCAM_RUNS_DIR``; default ``<cache_dir>/runs``) holds one folder per fit, ``<run id>/``, with
its TensorBoard logs in ``tensorboard/``, and the MLflow artifacts in ``mlflow-artifacts/``. The default
tracking store is SQLite, ``sqlite:///<cache_dir>/mlflow.db``: a file the student owns, no server needed.
On Kubernetes the spawner puts ``cache_dir`` on the shared work volume, so rank 0 (in an executor pod) and the
notebook see the same runs; ``fit`` asks the backend whether a TensorBoard directory is shared anyway.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass

from occam import config

#: The TensorBoard folder inside a run's folder.
TENSORBOARD_FOLDER = "tensorboard"
#: The MLflow artifact root inside ``runs_dir`` (for the SQLite store; a server keeps its own).
ARTIFACTS_FOLDER = "mlflow-artifacts"
#: The SQLite store's file inside ``cache_dir``.
DATABASE_FILE = "mlflow.db"


@dataclass(frozen=True)
class TrackingSettings:
    """Where runs go: resolved once per fit (or per ``occam.runs()`` call) from the layered config."""

    enabled: bool
    runs_dir: str
    uri: str
    experiment: str

    @property
    def local_store(self) -> bool:
        """Whether the store is a file of the student's own (SQLite or a folder), not a server."""
        return not self.uri.startswith(("http://", "https://", "databricks"))

    @property
    def artifact_root(self) -> str | None:
        """Where a new experiment keeps its artifacts: under ``runs_dir`` for a local store; a server decides its
        own (None)."""
        return f"file://{os.path.join(self.runs_dir, ARTIFACTS_FOLDER)}" if self.local_store else None

    @property
    def database(self) -> str | None:
        """The SQLite file of a ``sqlite:///`` store, else None."""
        return self.uri.removeprefix("sqlite:///") if self.uri.startswith("sqlite:///") else None


def settings(track: bool | None = None, environ: Mapping[str, str] | None = None) -> TrackingSettings:
    """The tracking settings: ``track`` over ``OCCAM_TRACKING`` over on; the other settings from the config."""
    cache_dir = os.path.expanduser(config.get("cache_dir", environ=environ))
    runs_dir = config.get("runs_dir", environ=environ) or os.path.join(cache_dir, "runs")
    uri = config.get("tracking_uri", environ=environ) or f"sqlite:///{os.path.join(cache_dir, DATABASE_FILE)}"
    return TrackingSettings(
        enabled=bool(config.get("tracking", track, environ=environ)),
        runs_dir=os.path.abspath(os.path.expanduser(runs_dir)),
        uri=uri,
        experiment=str(config.get("tracking_experiment", environ=environ)),
    )


def new_run_id(model_name: str, now: float | None = None) -> str:
    """A run's id, readable and sortable: ``20261201-104501-build_model-3fa2`` (local time, model, random)."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", model_name).strip("_.") or "model"
    return f"{stamp}-{name[:40]}-{secrets.token_hex(2)}"


def tensorboard_dir(runs_dir: str, run_id: str) -> str:
    """The folder rank 0 writes a run's TensorBoard logs to."""
    return os.path.join(runs_dir, run_id, TENSORBOARD_FOLDER)
