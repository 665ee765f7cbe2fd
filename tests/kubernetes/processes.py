"""Background processes of the test harnesses (the control plane's components, the real node's containerd and
kubelet): each in its own process group with its log in the harness's directory, killed with that group, and
killed by the kernel if the test process dies (``PR_SET_PDEATHSIG``). Waits have deadlines and their errors name
what they waited for, with the tail of the component's log.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(no log: {exc})"


class Harness:
    """Named processes started by :meth:`spawn`; a context manager around the subclass's ``start``/``stop``.

    Subclasses set ``error`` (the exception their waits raise), ``dir`` (where logs go) and ``timeout``.
    """

    error: type[Exception] = RuntimeError
    poll_seconds = 0.3

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.dir: Path | None = None
        self._procs: dict[str, subprocess.Popen] = {}
        self._logs: dict[str, Path] = {}

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Any:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> None:
        """Start ``args`` as component ``name`` (in ``env``, else this process's), its output in ``<dir>/<name>.log``."""
        assert self.dir is not None
        log = self.dir / f"{name}.log"
        self._logs[name] = log
        with open(log, "ab") as out:
            self._procs[name] = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.dir,
                env=env,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )

    def log(self, component: str) -> Path:
        """The log file of ``component``."""
        return self._logs[component]

    def running(self, name: str) -> bool:
        """Whether component ``name`` was started and has not exited."""
        proc = self._procs.get(name)
        return proc is not None and proc.poll() is None

    def exited(self) -> list[str]:
        """Components that have exited."""
        return [name for name, proc in self._procs.items() if proc.poll() is not None]

    def wait_for(
        self,
        what: str,
        component: str,
        check: Callable[[], T | None],
        timeout: float | None = None,
        give_up_on: tuple[type[Exception], ...] = (),
    ) -> T:
        """Call ``check`` until it returns something truthy (exceptions count as not yet, except ``give_up_on``,
        which propagate); fails at once if ``component`` exits, and at the deadline with the last error and the
        component's log tail."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        last: object = None
        while True:
            proc = self._procs.get(component)
            if proc is not None and proc.poll() is not None:
                raise self.error(
                    f"{component} exited with status {proc.returncode} while waiting for {what}\n"
                    f"--- tail of {self._logs[component]} ---\n{log_tail(self._logs[component])}"
                )
            try:
                result = check()
                if result:
                    return result
            except give_up_on:
                raise
            except Exception as exc:
                last = exc
            if time.monotonic() > deadline:
                log = self._logs.get(component)
                tail = f"\n--- tail of {log} ---\n{log_tail(log)}" if log else ""
                raise self.error(f"timed out waiting for {what} (last error: {last}){tail}")
            time.sleep(self.poll_seconds)

    def kill(self, name: str, grace: float = 10.0) -> None:
        """SIGTERM ``name``'s process group, SIGKILL after ``grace`` seconds; forget it. No-op if unknown."""
        proc = self._procs.pop(name, None)
        if proc is None:
            return
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=grace)
        with contextlib.suppress(ProcessLookupError):  # children left in the group (none expected)
            os.killpg(proc.pid, signal.SIGKILL)

    def kill_all(self, grace: float = 10.0) -> None:
        """Kill every component, newest first."""
        for name in reversed(list(self._procs)):
            self.kill(name, grace)
