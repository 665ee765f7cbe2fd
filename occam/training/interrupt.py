"""Ctrl-C (the notebook's stop button) during ``fit``: stop the ranks at once and say where training stopped.

Horovod's launcher replaces the SIGINT and SIGTERM handlers with its own, which only tell its threads to end
the rank processes, and never puts the previous ones back: the notebook would then ignore every later Ctrl-C,
and ``fit`` would report the ended ranks as a failure. :class:`InterruptWatch` notices the signal whatever
handler runs (Python's wakeup file descriptor receives the number of every signal), cancels the cluster's Spark
jobs at once so the rank tasks end, and restores the handlers afterwards.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

WATCHED = (signal.SIGINT, signal.SIGTERM)


class InterruptWatch:
    """Use as a context manager around Horovod's launch, in the main thread.

    ``on_interrupt`` runs once, in a helper thread, as soon as SIGINT or SIGTERM arrives. ``interrupted`` is
    then True. On exit the signal handlers and the wakeup descriptor are what they were before.
    """

    def __init__(self, on_interrupt: Callable[[], None]) -> None:
        self._on_interrupt = on_interrupt
        self._seen = threading.Event()
        self._closing = threading.Event()
        self._handlers: dict[int, Any] = {}
        self._previous_fd = -1
        self._read = self._write = -1
        self._thread: threading.Thread | None = None

    @property
    def interrupted(self) -> bool:
        return self._seen.is_set()

    def __enter__(self) -> InterruptWatch:
        if threading.current_thread() is not threading.main_thread():
            return self  # signals reach the main thread only; nothing to watch from here
        self._handlers = {sig: signal.getsignal(sig) for sig in WATCHED}
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)
        self._previous_fd = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        self._thread = threading.Thread(target=self._watch, name="occam-interrupt", daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._closing.is_set():
            ready, _, _ = select.select([self._read], [], [], 0.2)
            if not ready:
                continue
            try:
                received = os.read(self._read, 64)
            except OSError:
                return
            if any(number in received for number in WATCHED) and not self._seen.is_set():
                self._seen.set()
                with contextlib.suppress(Exception):
                    self._on_interrupt()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._thread is None:
            return
        signal.set_wakeup_fd(self._previous_fd)
        for sig, handler in self._handlers.items():
            if handler is not None:
                signal.signal(sig, handler)
        self._closing.set()
        self._thread.join(timeout=5)
        for fd in (self._read, self._write):
            with contextlib.suppress(OSError):
                os.close(fd)
