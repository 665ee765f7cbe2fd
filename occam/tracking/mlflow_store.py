"""The MLflow store, reached from the notebook: imported lazily (MLflow takes seconds to import) and quietly.

Quiet: MLflow's own INFO lines go nowhere, and the first use of a SQLite store does not let Alembic's
migration script reconfigure the notebook's logging (it calls ``logging.config.fileConfig``, which would add a
stderr handler to the root logger of the kernel and print every migration step).
"""

from __future__ import annotations

import contextlib
import logging
import logging.config
import os
import threading
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from occam.tracking.paths import TrackingSettings, settings

if TYPE_CHECKING:
    import pandas as pd
    from mlflow.tracking import MlflowClient

_import_lock = threading.Lock()


def patch_sqlalchemy() -> None:
    """Let MLflow 2.22 import its SQL store under SQLAlchemy 2.1.

    ``mlflow.store.db.utils`` imports ``sqlalchemy.pool.FallbackAsyncAdaptedQueuePool``, a name SQLAlchemy 2.1
    removed (it only offers it for a pool class chosen by ``MLFLOW_SQLALCHEMYSTORE_POOLCLASS``); the lock pins
    SQLAlchemy 2.1.9 with MLflow 2.22.5. The name is given back as what it was an alias of. No-op where the
    name exists.
    """
    import sqlalchemy.pool

    if not hasattr(sqlalchemy.pool, "FallbackAsyncAdaptedQueuePool"):
        sqlalchemy.pool.FallbackAsyncAdaptedQueuePool = sqlalchemy.pool.AsyncAdaptedQueuePool  # type: ignore[attr-defined]


def import_mlflow() -> None:
    """Import MLflow's client quietly (once; later calls return at once)."""
    with _import_lock:
        # Deprecation notices raised in MLflow's own modules (Pydantic's, at import): not the student's concern.
        # A filter, not catch_warnings: this runs in the recorder's thread, beside the notebook's own code.
        warnings.filterwarnings("ignore", module=r"mlflow(\.|$)")
        patch_sqlalchemy()
        import mlflow.tracking  # noqa: F401

        for name in ("mlflow", "alembic"):
            logging.getLogger(name).setLevel(logging.WARNING)


@contextlib.contextmanager
def _no_logging_reconfiguration() -> Iterator[None]:
    """Alembic's ``env.py`` (run when MLflow creates or upgrades a SQLite store) calls ``fileConfig``: skip it.
    Its migration scripts log INFO lines under loggers named after each script: none of them is shown (for the
    second or so the store takes to open, no INFO line is, where the notebook's logging would show them)."""
    original, disabled = logging.config.fileConfig, logging.root.manager.disable
    logging.config.fileConfig = lambda *args, **kwargs: None
    logging.disable(max(disabled, logging.INFO))
    try:
        yield
    finally:
        logging.config.fileConfig = original
        logging.disable(disabled)


def open_client(settings: TrackingSettings) -> MlflowClient:
    """A client of the store ``settings`` names; a SQLite store's file (and folder) is created on first use."""
    import_mlflow()
    from mlflow.tracking import MlflowClient

    if settings.database:
        os.makedirs(os.path.dirname(settings.database) or ".", exist_ok=True)
    with _import_lock, _no_logging_reconfiguration():
        client = MlflowClient(tracking_uri=settings.uri)
        client.search_experiments(max_results=1)  # the store is created (and its schema migrated) here
    return client


def experiment_id(client: MlflowClient, settings: TrackingSettings, *, create: bool = True) -> str | None:
    """The id of the experiment runs go to (created with its artifacts under ``runs_dir`` for a local store)."""
    experiment = client.get_experiment_by_name(settings.experiment)
    if experiment is not None:
        return str(experiment.experiment_id)
    if not create:
        return None
    return str(client.create_experiment(settings.experiment, artifact_location=settings.artifact_root))


#: The columns ``occam.runs()`` puts first; then ``params.*`` and ``metrics.*`` (each metric's last value).
RUN_COLUMNS = ["run_id", "run_name", "start_time", "end_time", "status"]


def runs(max_runs: int = 1000) -> pd.DataFrame:
    """The student's recorded fits, newest first, as a pandas DataFrame to compare them.

    One row per run: ``run_id``, ``run_name`` (Occam's run id, also the run's folder under the runs directory),
    ``start_time``, ``end_time``, ``status`` (``FINISHED``, ``FAILED``, ``KILLED``, ``RUNNING``), then a
    ``params.<name>`` column per parameter (executors, gpus, batch_size, epochs, learning_rate, dataset...) and
    a ``metrics.<name>`` column per metric with its last value (``metrics.loss``, ``metrics.val_accuracy``...).
    The store is ``OCCAM_TRACKING_URI`` (default the student's SQLite file), experiment ``OCCAM_TRACKING_EXPERIMENT``.
    """
    return runs_frame(settings(), max_runs)


def runs_frame(settings: TrackingSettings, max_runs: int = 1000) -> pd.DataFrame:
    """The experiment's runs, newest first, as a DataFrame (empty, with the first columns, when there is none)."""
    import pandas as pd

    client = open_client(settings)
    found = experiment_id(client, settings, create=False)
    rows: list[dict[str, Any]] = []
    if found is not None:
        for run in client.search_runs([found], max_results=max_runs, order_by=["attributes.start_time DESC"]):
            info, data = run.info, run.data
            row: dict[str, Any] = {
                "run_id": info.run_id,
                "run_name": info.run_name,
                "start_time": pd.to_datetime(info.start_time, unit="ms", utc=True),
                "end_time": pd.to_datetime(info.end_time, unit="ms", utc=True) if info.end_time else pd.NaT,
                "status": info.status,
            }
            row.update({f"params.{k}": v for k, v in sorted(data.params.items())})
            row.update({f"metrics.{k}": v for k, v in sorted(data.metrics.items())})
            rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=RUN_COLUMNS)
    rest = sorted(c for c in frame.columns if c not in RUN_COLUMNS)
    return frame[
        RUN_COLUMNS + [c for c in rest if c.startswith("params.")] + [c for c in rest if c.startswith("metrics.")]
    ]
