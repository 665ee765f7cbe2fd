"""Release a cluster's executors when it has been idle too long: no Spark job and no fit for a set time.

A course shares its CPUs and GPUs; a student who starts ``start_cluster(n=4, gpu=True)`` and goes to lunch
holds four GPUs until the notebook is culled. :class:`IdleWatcher` is a daemon thread that asks, every few
seconds, whether the cluster did anything (``activity``: a value that changes when a job starts or ends,
and is truthy while one runs); after ``limit`` seconds without, it calls ``release`` once and ends.
:meth:`IdleWatcher.busy` marks work the watcher cannot see as jobs (the start of a fit, between jobs), and
a release never overlaps it: it waits for the busy block to end, and a block that starts after the release
finds the cluster stopped. Spark's dynamic allocation, which could release executors itself, is off in
Occam (Horovod needs every rank for the whole fit).

The setting is ``executor_idle_minutes`` (``OCCAM_EXECUTOR_IDLE_MINUTES``; the hub sets it from the
course's ``executorIdleMinutes``). :class:`occam.Cluster` starts a watcher when it is above 0.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager

#: The longest gap between two looks at the cluster (a short limit looks more often).
MAX_POLL_SECONDS = 10.0


class IdleWatcher:
    """Calls ``release`` once the cluster has been idle for ``limit`` seconds (see the module docstring).

    ``activity()`` returns ``(running, marker)``: ``running`` true while a job runs, ``marker`` any value
    that changes when jobs start or end (e.g. the newest job id). An exception from it counts as no news
    (the cluster may be stopping); :meth:`stop` ends the thread without releasing anything.
    """

    def __init__(
        self,
        limit: float,
        activity: Callable[[], tuple[bool, Hashable]],
        release: Callable[[], None],
        *,
        poll: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not limit > 0:
            raise ValueError(f"idle limit {limit!r} must be a number of seconds above 0")
        self.limit = float(limit)
        self.poll = poll if poll is not None else min(MAX_POLL_SECONDS, self.limit / 4)
        self._activity = activity
        self._release = release
        self._clock = clock
        self._lock = threading.Lock()
        self._busy = 0
        self._stop = threading.Event()
        self._last_active = clock()
        self._marker: Hashable = None
        self.released = False
        self._thread = threading.Thread(target=self._run, name="occam-idle-watcher", daemon=True)

    def start(self) -> IdleWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        """End the watcher (the cluster stops for another reason); waits for its thread."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.poll + 5)

    @contextmanager
    def busy(self) -> Iterator[None]:
        """Work that counts as activity for as long as it lasts (a fit, an evaluate)."""
        with self._lock:
            self._busy += 1
        try:
            yield
        finally:
            with self._lock:
                self._busy -= 1
                self._last_active = self._clock()

    def idle_seconds(self) -> float:
        """Seconds since the cluster last did anything, as of the last look."""
        return max(0.0, self._clock() - self._last_active)

    def check(self) -> bool:
        """One look: note any activity; release (once) if idle for ``limit``. True once released."""
        try:
            running, marker = self._activity()
        except Exception:  # a cluster being stopped answers with errors; that is not activity
            running, marker = False, self._marker
        with self._lock:
            now = self._clock()
            if running or self._busy or marker != self._marker:
                self._marker = marker
                self._last_active = now
                return False
            if now - self._last_active < self.limit or self.released:
                return self.released
            self.released = True
            # Under the lock: a busy() block waits for the release to finish, then finds the cluster stopped.
            self._release()
            return True

    def _run(self) -> None:
        while not self._stop.wait(self.poll):
            if self.check():
                return


__all__ = ["MAX_POLL_SECONDS", "IdleWatcher"]
