"""TensorBoard for a student's runs: rank 0 writes the logs during ``fit``, :func:`tensorboard` shows them.

``fit(..., tensorboard=True)`` writes to the run's own folder, ``<runs_dir>/<run id>/tensorboard`` (or to the
folder given instead of True): :class:`WithTensorBoard` adds a ``keras.callbacks.TensorBoard`` to the ranks'
callbacks, and since it writes files it runs in rank 0 only (``occam.training.callbacks``).
:func:`tensorboard` starts TensorBoard on ``runs_dir`` (every run, one TensorBoard "run" per folder).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from occam.tracking.paths import settings
from occam.tracking.servers import HOST, LocalServer, start_server

#: How long :func:`tensorboard` waits for TensorBoard to answer (it imports TensorFlow first: seconds).
START_SECONDS = 120.0


@dataclass(frozen=True)
class WithTensorBoard:
    """The ranks' callbacks: the student's (a list, or a function returning one) and a TensorBoard writer.

    A function of its own, called in each rank, so that the TensorBoard callback is made there (with the
    rank's TensorFlow) rather than pickled from the notebook.
    """

    log_dir: str
    callbacks: Sequence[Any] | Callable[[], Sequence[Any]] | None = None

    def __call__(self) -> list[Any]:
        import tensorflow as tf

        own = self.callbacks() if callable(self.callbacks) else self.callbacks
        # Per epoch, no profiler: the profiler slows the steps it traces and needs a plugin the image lacks.
        writer = tf.keras.callbacks.TensorBoard(log_dir=self.log_dir, update_freq="epoch", profile_batch=0)
        return [*(own or []), writer]


def tensorboard_command(logdir: str, port: int) -> list[str]:
    """TensorBoard's command line: this Python's ``tensorboard``, on 127.0.0.1 only, reading ``logdir``."""
    return [
        sys.executable,
        "-m",
        "tensorboard.main",
        f"--logdir={logdir}",
        f"--host={HOST}",
        f"--port={port}",
        # The Python reader in this process: no separate data server process to keep track of.
        "--load_fast=false",
        "--reload_interval=5",
    ]


def tensorboard(logdir: str | None = None, *, timeout: float = START_SECONDS) -> LocalServer:
    """Start TensorBoard on the student's runs (``logdir``, default ``runs_dir``) and return it once it answers.

    The result's ``link`` opens it (through JupyterHub's proxy in a hub notebook); it shows as a link in a
    notebook. Stop it with ``.stop()`` or use it as a context manager; it stops when the notebook's kernel
    does. Raises :class:`~occam.errors.ServerStartError` with TensorBoard's log when it does not come up
    within ``timeout`` seconds.
    """
    directory = os.path.abspath(os.path.expanduser(logdir)) if logdir else settings().runs_dir
    os.makedirs(directory, exist_ok=True)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return start_server(
        "TensorBoard",
        lambda port: tensorboard_command(directory, port),
        ready_path="/data/logdir",
        timeout=timeout,
        env=env,
    )
