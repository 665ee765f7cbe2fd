"""The driver's side of the ranks' messages while ``fit`` runs: a progress bar, a line per epoch, and
the user's ``on_epoch_end``."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any, assert_never

from occam.training.messages import BatchProgress, EpochEnded, Message, RankFailed, RankStarted

POLL_SECONDS = 0.2


class ProgressFollower(threading.Thread):
    """Takes the ranks' messages from ``messages`` as they arrive and keeps them in ``events``.

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
    ) -> None:
        super().__init__(name="occam-fit-progress", daemon=True)
        self.messages, self.epochs, self.progress, self.on_epoch_end = messages, epochs, progress, on_epoch_end
        self.events: list[Message] = []
        self.callback_error: BaseException | None = None
        self._done = threading.Event()

    def run(self) -> None:
        from tqdm.auto import tqdm

        with tqdm(total=self.epochs, desc="epochs", unit="epoch", disable=not self.progress) as bar:
            while not (self._done.is_set() and self.messages.empty()):
                try:
                    message = self.messages.get(timeout=POLL_SECONDS)
                except queue.Empty:
                    continue
                self.events.append(message)
                self.handle(bar, message)

    def handle(self, bar: Any, message: Message) -> None:
        """Show ``message`` on ``bar`` (a tqdm bar) and call ``on_epoch_end`` for an ended epoch."""
        match message:
            case RankStarted(initial_epoch=done) if done:
                bar.update(done)
                if self.progress:  # a bar's write prints even when the bar is disabled
                    bar.write(f"resuming after epoch {done}")
            case RankStarted():
                pass
            case BatchProgress(epoch=epoch, batch=batch, steps=steps):
                bar.set_postfix_str(f"epoch {epoch}: batch {batch}/{steps}")
            case EpochEnded():
                self._epoch_ended(bar, message)
            case RankFailed():
                pass  # fit raises it, with the other ranks' reports, once Horovod returns
            case _:
                assert_never(message)

    def _epoch_ended(self, bar: Any, message: EpochEnded) -> None:
        bar.set_postfix_str("")
        bar.update(1)
        if self.progress:
            metrics = " ".join(f"{k}={v:.4f}" for k, v in message.metrics.items())
            bar.write(f"epoch {message.epoch}/{message.epochs} ({message.seconds:.1f} s): {metrics}")
        if self.on_epoch_end is not None and self.callback_error is None:
            try:
                self.on_epoch_end(message.epoch, dict(message.metrics))
            except Exception as exc:
                self.callback_error = exc

    def finish(self, timeout: float = 30.0) -> None:
        """Handle what is still queued, then stop."""
        self._done.set()
        self.join(timeout=timeout)
