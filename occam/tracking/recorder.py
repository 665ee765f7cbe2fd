"""The driver's record of one ``fit`` as an MLflow run, written by a thread of its own.

``fit`` hands the recorder what it already has on the driver: the run's facts before the ranks start, each
epoch's metrics as the ranks' epoch events arrive, and at the end the history and the trained model. The
ranks know nothing of MLflow. The thread does the slow parts (importing MLflow, the store's writes) while
training runs; ``finish`` waits for it, at most ``FINISH_SECONDS``.

Tracking never fails a fit: the first error (a store that cannot be opened, a server that does not answer)
is reported once per process as a :class:`TrackingWarning` and the rest of that fit goes unrecorded.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

from occam.tracking.paths import TrackingSettings
from occam.tracking.record import FitRecord, run_params, run_tags

#: How long ``finish`` waits for the run to be written (longer only for a slow tracking server).
FINISH_SECONDS = 60.0
#: ... and after a Ctrl-C, when the student wants the prompt back.
INTERRUPTED_SECONDS = 5.0

FINISHED, FAILED, KILLED = "FINISHED", "FAILED", "KILLED"


class TrackingWarning(UserWarning):
    """A fit could not be recorded in MLflow; training itself was not affected."""


_warned = threading.Event()


def warn_once(problem: str) -> None:
    """Say, once per process, that tracking failed and how to turn it off."""
    if _warned.is_set():
        return
    _warned.set()
    warnings.warn(
        f"occam: this fit is not recorded in MLflow ({problem}); training is not affected. Turn tracking off "
        "with fit(..., track=False) or OCCAM_TRACKING=0, or point OCCAM_TRACKING_URI at a store that works.",
        TrackingWarning,
        stacklevel=3,
    )


class NoRecorder:
    """Tracking is off: every call does nothing."""

    mlflow_run_id: str | None = None

    def chain(
        self, on_epoch_end: Callable[[int, dict[str, float]], None] | None
    ) -> Callable[[int, dict[str, float]], None] | None:
        return on_epoch_end

    def finish(
        self,
        status: str,
        history: dict[str, list[float]] | None = None,
        epochs: list[int] | None = None,
        model: Any = None,
    ) -> None:
        pass


class Recorder(NoRecorder):
    """One fit's MLflow run; created (in its thread) as soon as the recorder is."""

    def __init__(self, settings: TrackingSettings, record: FitRecord, user: str | None = None) -> None:
        self.settings, self.record, self.user = settings, record, user
        self.mlflow_run_id: str | None = None
        self.failed = False
        self._client: Any = None
        self._epochs_logged: set[int] = set()
        self._tasks: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="occam-tracking", daemon=True)
        self._thread.start()
        self._tasks.put(self._start_run)

    # -- what fit calls ------------------------------------------------------------------------------

    def epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        """Record ``epoch``'s metrics (called from the thread that follows the ranks' events; never blocks)."""
        values = dict(metrics)
        stamp = int(time.time() * 1000)
        self._tasks.put(lambda: self._log_epoch(epoch, values, stamp))

    def chain(
        self, on_epoch_end: Callable[[int, dict[str, float]], None] | None
    ) -> Callable[[int, dict[str, float]], None]:
        """An ``on_epoch_end`` that records the epoch, then calls the student's own (whose errors fit reports)."""

        def record_then_call(epoch: int, metrics: dict[str, float]) -> None:
            self.epoch(epoch, metrics)
            if on_epoch_end is not None:
                on_epoch_end(epoch, metrics)

        return record_then_call

    def finish(
        self,
        status: str,
        history: dict[str, list[float]] | None = None,
        epochs: list[int] | None = None,
        model: Any = None,
    ) -> None:
        """End the run with ``status``: the epochs not yet recorded (``history``'s values of ``epochs``),
        ``history.json`` and the model as ``model.keras`` as artifacts; wait for the thread, at most
        ``FINISH_SECONDS``."""
        staging = tempfile.mkdtemp(prefix="occam-run-")
        try:
            if history is not None:
                with open(os.path.join(staging, "history.json"), "w") as out:
                    json.dump(history, out, indent=1)
            if model is not None and not self.failed:
                # Saved here, in the caller's thread: Keras objects are not for sharing with another thread.
                try:
                    model.save(os.path.join(staging, "model.keras"))
                except Exception as exc:
                    self._fail(f"saving the model failed: {exc!r}")
            self._tasks.put(lambda: self._end_run(status, history or {}, epochs or [], staging))
            self._tasks.put(None)
            self._thread.join(INTERRUPTED_SECONDS if status == KILLED else FINISH_SECONDS)
            if self._thread.is_alive():
                self._fail(f"the store did not answer within {FINISH_SECONDS:.0f} s")
        finally:
            if not self._thread.is_alive():
                shutil.rmtree(staging, ignore_errors=True)

    # -- the thread ----------------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            task = self._tasks.get()
            if task is None:
                return
            if self.failed:
                continue
            try:
                task()
            except Exception as exc:
                self._fail(f"{type(exc).__name__}: {exc}")

    def _fail(self, problem: str) -> None:
        self.failed = True
        warn_once(problem)

    def _start_run(self) -> None:
        from mlflow.entities import Param

        from occam.tracking.mlflow_store import experiment_id, open_client

        client = open_client(self.settings)
        found = experiment_id(client, self.settings)
        assert found is not None
        run = client.create_run(found, run_name=self.record.run_id, tags=run_tags(self.record, self.user))
        run_id: str = run.info.run_id
        self._client, self.mlflow_run_id = client, run_id
        client.log_batch(run_id, params=[Param(k, v) for k, v in run_params(self.record).items()])

    def _log_epoch(self, epoch: int, metrics: dict[str, float], stamp: int) -> None:
        from mlflow.entities import Metric

        if epoch in self._epochs_logged:
            return
        self._epochs_logged.add(epoch)
        batch = [Metric(key, value, stamp, epoch) for key, value in metrics.items()]
        self._client.log_batch(self.mlflow_run_id, metrics=batch)

    def _end_run(self, status: str, history: dict[str, list[float]], epochs: list[int], staging: str) -> None:
        # The epochs whose events did not reach the recorder (a student's on_epoch_end that raised stops the
        # calls) come from the history, whose values are those of ``epochs``, in order.
        for index, epoch in enumerate(epochs):
            metrics = {k: v[index] for k, v in history.items() if index < len(v)}
            if metrics:
                self._log_epoch(epoch, metrics, int(time.time() * 1000))
        for name in sorted(os.listdir(staging)):
            self._client.log_artifact(self.mlflow_run_id, os.path.join(staging, name))
        self._client.set_terminated(self.mlflow_run_id, status)
        shutil.rmtree(staging, ignore_errors=True)


def recorder_for(settings: TrackingSettings, record: FitRecord) -> NoRecorder:
    """A :class:`Recorder` for ``record`` when tracking is on, else a :class:`NoRecorder`."""
    if not settings.enabled:
        return NoRecorder()
    return Recorder(settings, record, user=os.environ.get("JUPYTERHUB_USER"))
