"""The driver's side of the ranks' messages while ``fit`` runs: the live dashboard and the user's
``on_epoch_end``."""

from __future__ import annotations

import contextvars
import queue
import threading
import time
from collections.abc import Callable

from occam.training.dashboard import UPDATE_SECONDS, Dashboard, choose_dashboard
from occam.training.messages import EpochEnded, Message, RankFailed, RankStarted
from occam.training.snapshot import ProgressTracker

POLL_SECONDS = 0.2


class ProgressFollower(threading.Thread):
    """Takes the ranks' messages from ``messages`` as they arrive, keeps them in ``events``, and draws
    the fit's progress on a :class:`~occam.training.dashboard.Dashboard`.

    The dashboard is redrawn at once when an epoch starts or ends, and otherwise at most every
    ``update_seconds``: the ranks send several messages a second, and each redraw costs the driver CPU.
    An exception from ``on_epoch_end`` does not stop training: it is kept in ``callback_error`` (and the
    callback not called again), for ``fit`` to raise once training is over.
    """

    def __init__(
        self,
        messages: queue.Queue[Message],
        *,
        epochs: int,
        progress: bool,
        on_epoch_end: Callable[[int, dict[str, float]], None] | None,
        dashboard: Dashboard | None = None,
        update_seconds: float = UPDATE_SECONDS,
    ) -> None:
        super().__init__(name="occam-fit-progress", daemon=True)
        self.messages, self.epochs, self.progress, self.on_epoch_end = messages, epochs, progress, on_epoch_end
        self.events: list[Message] = []
        self.callback_error: BaseException | None = None
        self.tracker = ProgressTracker(epochs)
        # Made here, in the caller's thread: a notebook display belongs to the cell that runs fit.
        self.dashboard = dashboard if dashboard is not None else choose_dashboard(progress)
        self.update_seconds = update_seconds
        self.updates = 0
        self._last_update = 0.0
        self._display_failed = False
        self._done = threading.Event()
        # The creator's context: a notebook kernel finds in it the cell this fit's output belongs to.
        self._context = contextvars.copy_context()

    def run(self) -> None:
        self._context.run(self._follow)

    def _follow(self) -> None:
        while not (self._done.is_set() and self.messages.empty()):
            try:
                message = self.messages.get(timeout=POLL_SECONDS)
            except queue.Empty:
                continue
            self.handle(message)

    def handle(self, message: Message) -> None:
        """Take ``message`` into the dashboard's state, redraw when due, call ``on_epoch_end`` for an epoch."""
        self.events.append(message)
        self.tracker.add(message)
        now = time.monotonic()
        if isinstance(message, RankStarted | EpochEnded | RankFailed) or now - self._last_update >= self.update_seconds:
            self._last_update = now
            self._draw()
        if isinstance(message, EpochEnded):
            self._epoch_ended(message)

    def _draw(self) -> None:
        if self._display_failed:
            return
        self.updates += 1
        try:
            self.dashboard.update(self.tracker.snapshot())
        except Exception as exc:  # a display that fails must not stop training (or its progress thread)
            self._display_failed = True
            print(f"occam: the progress display failed and is off for this fit: {exc!r}")

    def _epoch_ended(self, message: EpochEnded) -> None:
        if self.on_epoch_end is not None and self.callback_error is None:
            try:
                self.on_epoch_end(message.epoch, dict(message.metrics))
            except Exception as exc:
                self.callback_error = exc

    def finish(self, timeout: float = 30.0) -> None:
        """Handle what is still queued, draw the final state, then stop."""
        self._done.set()
        if self.ident is not None:  # started
            self.join(timeout=timeout)
        self.tracker.finish()
        if self._display_failed:
            return
        try:
            self.dashboard.close(self.tracker.snapshot())
        except Exception as exc:
            print(f"occam: the progress display failed: {exc!r}")
