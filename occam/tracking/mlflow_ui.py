"""The MLflow UI on the student's store, next to the notebook like TensorBoard (:mod:`occam.tracking.servers`)."""

from __future__ import annotations

import os
import sys

from occam.tracking.paths import settings
from occam.tracking.servers import HOST, LocalServer, start_server

#: How long :func:`mlflow_ui` waits for the UI to answer (MLflow imports for seconds).
START_SECONDS = 120.0


def mlflow_ui_command(uri: str, artifact_root: str | None, port: int) -> list[str]:
    """The UI's command line: MLflow's own server app, on 127.0.0.1 only (:mod:`occam.tracking.mlflow_app`)."""
    command = [sys.executable, "-m", "occam.tracking.mlflow_app", f"--store={uri}", f"--host={HOST}", f"--port={port}"]
    if artifact_root:
        command.append(f"--artifact-root={artifact_root}")
    return command


def mlflow_ui(*, timeout: float = START_SECONDS) -> LocalServer:
    """Start the MLflow UI on the student's tracking store and return it once it answers.

    Use its ``link`` (through JupyterHub's proxy in a hub notebook); stop it with ``.stop()`` or as a context
    manager. With a course MLflow server (``OCCAM_TRACKING_URI=http...``) open that server instead: this UI is
    for the student's own store.
    """
    tracking = settings()
    if tracking.database:
        os.makedirs(os.path.dirname(tracking.database) or ".", exist_ok=True)
    return start_server(
        "MLflow UI",
        lambda port: mlflow_ui_command(tracking.uri, tracking.artifact_root, port),
        ready_path="/health",
        timeout=timeout,
    )
