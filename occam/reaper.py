"""A watchdog that cleans up after a cluster when the process that started it goes away.

The parent starts a reaper (:class:`Reaper`) in its own session with a pipe on its stdin and writes
``parent <pid>``, ``pid <pid>`` and ``dir <path>`` lines to it. The reaper keeps a record of every descendant
of the watched processes (JVMs, executors, Python workers, Horovod ranks). When its stdin reaches end of
file, because the parent closed it in ``Cluster.stop()`` or because the parent died (even by SIGKILL), or when
the parent process is gone although the pipe is still open (a child the parent forked inherited it), it
terminates whatever of that record is still alive and removes the directories.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import subprocess
import sys
import time
from typing import IO

import psutil

POLL_SECONDS = 0.5
GRACE_SECONDS = 10.0


class Tracker:
    """Processes seen under the watched roots, keyed by (pid, create time) so a reused pid is never hit."""

    def __init__(self) -> None:
        self.roots: list[psutil.Process] = []
        self.seen: dict[tuple[int, float], psutil.Process] = {}

    def add_root(self, pid: int) -> None:
        try:
            proc = psutil.Process(pid)
        except psutil.NoSuchProcess:
            return
        self.roots.append(proc)
        self._remember(proc)

    def _remember(self, proc: psutil.Process) -> None:
        with contextlib.suppress(psutil.NoSuchProcess):
            self.seen[(proc.pid, proc.create_time())] = proc

    def refresh(self) -> None:
        """Remember every descendant of a watched process that is still running.

        One scan of the process table per call: ``Process.children`` scans the whole table itself, so calling
        it for each remembered process (executors, their Python workers...) made the watchdog's cost grow with
        everything the cluster ever started. A pid is followed only while its process is running, so a reused
        pid never brings in a stranger's children.
        """
        by_parent: dict[int, list[psutil.Process]] = {}
        for proc in psutil.process_iter(["ppid"]):
            by_parent.setdefault(proc.info["ppid"], []).append(proc)
        frontier = [p.pid for p in [*self.roots, *self.seen.values()] if p.is_running()]
        visited: set[int] = set()
        while frontier:
            pid = frontier.pop()
            if pid in visited:
                continue
            visited.add(pid)
            for child in by_parent.get(pid, []):
                self._remember(child)
                frontier.append(child.pid)

    def alive(self) -> list[psutil.Process]:
        return [p for p in self.seen.values() if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def terminate(procs: list[psutil.Process], grace: float) -> None:
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.terminate()
    _, still_alive = psutil.wait_procs(procs, timeout=grace)
    for proc in still_alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(still_alive, timeout=grace)


def _gone(proc: psutil.Process | None) -> bool:
    """Whether a watched parent has exited (``is_running`` also notices a reused pid); a zombie has exited."""
    if proc is None:
        return False
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def watch(stream: IO[str], grace: float = GRACE_SECONDS) -> None:
    tracker = Tracker()
    dirs: list[str] = []
    parent: psutil.Process | None = None
    fd = stream.fileno()
    buffer = b""
    while True:
        ready, _, _ = select.select([fd], [], [], POLL_SECONDS)
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            buffer += chunk
            *lines, rest = buffer.split(b"\n")
            buffer = rest
            for line in lines:
                kind, _, value = line.decode().partition(" ")
                if kind == "parent":
                    with contextlib.suppress(psutil.NoSuchProcess):
                        parent = psutil.Process(int(value))
                elif kind == "pid":
                    tracker.add_root(int(value))
                elif kind == "dir":
                    dirs.append(value)
        tracker.refresh()
        if _gone(parent):
            break
    # The parent is gone or done: give the JVM a moment to run its own shutdown hooks, then make sure.
    deadline = time.monotonic() + grace
    while tracker.alive() and time.monotonic() < deadline:
        tracker.refresh()
        time.sleep(POLL_SECONDS)
    terminate(tracker.alive(), grace)
    for path in dirs:
        shutil.rmtree(path, ignore_errors=True)


class Reaper:
    """The parent's handle on a reaper process."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-c", "import sys; from occam.reaper import watch; watch(sys.stdin)"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._send(f"parent {os.getpid()}")

    def _send(self, line: str) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write(line.encode() + b"\n")
        self._proc.stdin.flush()

    def watch_pid(self, pid: int) -> None:
        self._send(f"pid {pid}")

    def remove_dir_on_exit(self, path: str) -> None:
        self._send(f"dir {path}")

    @property
    def pid(self) -> int:
        return self._proc.pid

    def finish(self, timeout: float = 60.0) -> None:
        """Close the pipe and wait until the reaper has cleaned up."""
        if self._proc.stdin is not None and not self._proc.stdin.closed:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=10)
