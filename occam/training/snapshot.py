"""The state of a running ``fit`` as the driver knows it, from the ranks' messages: what every dashboard draws.

:class:`ProgressTracker` takes the messages one by one and :meth:`ProgressTracker.snapshot` returns a
:class:`ProgressSnapshot`, a plain value a renderer can draw without knowing about messages. Nothing here
draws or waits; time comes from a clock passed in, so the arithmetic (throughput, ETA) is tested exactly.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from occam.training.messages import BatchProgress, EpochEnded, Message, RankFailed, RankStarted, RankStats

#: At most this many within-epoch points are kept per metric: a long fit's curve stays small to draw and send.
MAX_BATCH_POINTS = 2000


@dataclass(frozen=True)
class RankView:
    """One rank's last report: throughput and resources (see :class:`~occam.training.messages.RankStats`)."""

    samples_per_second: float
    resources: dict[str, float]


@dataclass(frozen=True)
class ProgressSnapshot:
    """What a dashboard shows at one moment of a fit.

    ``epoch`` is the epoch under way (1-based; ``epochs_done`` have ended), ``batch`` of ``steps`` its
    progress. ``history`` holds one value per ended epoch for each metric, averaged over the ranks (as
    ``FitResult.history``), with ``history_epochs`` the epochs they belong to; ``batch_curves`` the running
    values within epochs as ``(fractional epoch, value)`` points. ``ranks`` maps each rank to its last report;
    ``eta_seconds`` is ``None`` until there is something to estimate from.
    """

    epochs: int
    epoch: int = 0
    epochs_done: int = 0
    initial_epoch: int = 0
    batch: int = 0
    steps: int = 0
    size: int = 0
    elapsed_seconds: float = 0.0
    epoch_elapsed_seconds: float = 0.0
    epoch_seconds: tuple[float, ...] = ()
    history: dict[str, list[float]] = field(default_factory=dict)
    history_epochs: tuple[int, ...] = ()
    batch_curves: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    ranks: dict[int, RankView] = field(default_factory=dict)
    eta_seconds: float | None = None
    state: str = "starting"  # starting, training, done, failed, stopped

    @property
    def samples_per_second(self) -> float:
        """All ranks together, from their last reports."""
        return sum(view.samples_per_second for view in self.ranks.values())

    @property
    def fraction_done(self) -> float:
        """How much of the fit's epochs are done, 0 to 1, counting the current epoch's batches."""
        if self.epochs <= 0:
            return 0.0
        within = self.batch / self.steps if self.steps and self.epoch > self.epochs_done else 0.0
        return min(1.0, (self.epochs_done + within) / self.epochs)


def estimate_eta(
    *,
    epochs: int,
    epochs_done: int,
    epoch_seconds: tuple[float, ...],
    epoch_elapsed: float,
    batch: int,
    steps: int,
) -> float | None:
    """Seconds left: from the mean duration of the epochs this fit ran (validation included) once one has
    ended; before that, from the current epoch's time per batch. ``None`` when neither is known yet."""
    left_epochs = epochs - epochs_done
    if left_epochs <= 0:
        return 0.0
    if epoch_seconds:
        per_epoch = sum(epoch_seconds) / len(epoch_seconds)
        return max(0.0, left_epochs * per_epoch - min(epoch_elapsed, per_epoch))
    if batch > 0 and steps > 0:
        per_batch = epoch_elapsed / batch
        return per_batch * ((steps - batch) + (left_epochs - 1) * steps)
    return None


class ProgressTracker:
    """Folds the ranks' messages into the state a :class:`ProgressSnapshot` shows."""

    def __init__(self, epochs: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.epochs = epochs
        self.clock = clock
        self.started = clock()
        self.epoch_started = self.started
        self.epoch = 0
        self.epochs_done = 0
        self.initial_epoch = 0
        self.batch = 0
        self.steps = 0
        self.size = 0
        self.epoch_seconds: list[float] = []
        self.history: dict[str, list[float]] = {}
        self.history_epochs: list[int] = []
        self.batch_curves: dict[str, list[tuple[float, float]]] = {}
        self.ranks: dict[int, RankView] = {}
        self.state = "starting"

    def add(self, message: Message) -> None:
        """Take one message into the state."""
        now = self.clock()
        if isinstance(message, RankStarted):
            self.size, self.steps, self.initial_epoch = message.size, message.steps, message.initial_epoch
            self.epochs_done = message.initial_epoch
            self.epoch = message.initial_epoch + 1
            self.epoch_started, self.state = now, "training"
        elif isinstance(message, BatchProgress):
            self._batch(message)
        elif isinstance(message, RankStats):
            self.ranks[message.rank] = RankView(message.samples_per_second, dict(message.resources))
        elif isinstance(message, EpochEnded):
            self.epochs_done, self.epoch, self.batch = message.epoch, message.epoch + 1, 0
            self.epoch_seconds.append(message.seconds)
            self.history_epochs.append(message.epoch)
            for name, value in message.metrics.items():
                # A metric first seen late (it should not happen) is padded so values stay aligned with epochs.
                values = self.history.setdefault(name, [float("nan")] * (len(self.history_epochs) - 1))
                values.append(value)
            self.epoch_started = now
            self.state = "done" if message.epoch >= message.epochs else "training"
        elif isinstance(message, RankFailed):
            self.state = "failed"

    def _batch(self, message: BatchProgress) -> None:
        if self.epoch != message.epoch:
            self.epoch = message.epoch
        self.batch, self.steps, self.state = message.batch, message.steps, "training"
        at = (message.epoch - 1) + message.batch / max(message.steps, 1)
        for name, value in message.metrics.items():
            points = self.batch_curves.setdefault(name, [])
            points.append((at, value))
            if len(points) > MAX_BATCH_POINTS:
                del points[::2]  # halve the resolution rather than drop the start of the curve

    def finish(self) -> None:
        """Training is over: the last snapshot says how (``done``, ``failed``, or ``stopped`` early: an
        interrupt, an early-stopping callback)."""
        if self.state != "failed":
            self.state = "done" if self.epochs_done >= self.epochs else "stopped"

    def snapshot(self) -> ProgressSnapshot:
        now = self.clock()
        epoch_elapsed = now - self.epoch_started if self.state == "training" else 0.0
        eta = estimate_eta(
            epochs=self.epochs,
            epochs_done=self.epochs_done,
            epoch_seconds=tuple(self.epoch_seconds),
            epoch_elapsed=epoch_elapsed,
            batch=self.batch,
            steps=self.steps,
        )
        return ProgressSnapshot(
            epochs=self.epochs,
            epoch=min(self.epoch, self.epochs),
            epochs_done=self.epochs_done,
            initial_epoch=self.initial_epoch,
            batch=self.batch,
            steps=self.steps,
            size=self.size,
            elapsed_seconds=now - self.started,
            epoch_elapsed_seconds=epoch_elapsed,
            epoch_seconds=tuple(self.epoch_seconds),
            history={k: list(v) for k, v in self.history.items()},
            history_epochs=tuple(self.history_epochs),
            batch_curves={k: list(v) for k, v in self.batch_curves.items()},
            ranks=dict(self.ranks),
            eta_seconds=eta if self.state in ("training", "starting") else (0.0 if self.state == "done" else None),
            state=self.state,
        )
