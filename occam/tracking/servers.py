"""A web UI as a child process of the notebook, on 127.0.0.1: started, awaited, linked and stopped like a cluster.

:func:`start_server` picks a free loopback port, starts the UI in a session (process group) of its own, waits
(at most ``timeout`` seconds) until an HTTP GET of its readiness path answers 200, and returns a
:class:`LocalServer`. Stopping ends the whole process group (a UI's own workers included) and removes its
working folder. Nothing outlives the notebook: servers still running at interpreter exit are stopped
(``atexit``), and a :class:`~occam.reaper.Reaper` watches the notebook's process, so even a killed kernel
leaves no UI process behind and its port free.

Loopback only: a UI has no login of its own. In JupyterHub the browser reaches it through jupyter-server-proxy,
behind the hub's login (:func:`occam.links.browser_link`).
"""

from __future__ import annotations

import atexit
import contextlib
import html
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Callable, Mapping, Sequence

from occam.errors import ServerStartError
from occam.links import browser_link
from occam.reaper import Reaper

HOST = "127.0.0.1"
POLL_SECONDS = 0.25
#: How long a UI has to exit after SIGTERM before it gets SIGKILL.
STOP_GRACE_SECONDS = 10.0
LOG_TAIL_CHARS = 3000

_live_servers: weakref.WeakSet[LocalServer] = weakref.WeakSet()


@atexit.register
def _stop_all_at_exit() -> None:
    for server in list(_live_servers):
        server.stop()


def running_servers() -> list[LocalServer]:
    """The UIs this process started and has not stopped."""
    return sorted(_live_servers, key=lambda s: s.started_at)


def free_port(host: str = HOST) -> int:
    """A port nothing listens on now (the UI binds it a moment later; a race lost shows as a start error)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class LocalServer:
    """A running UI: its ``url`` (direct), ``link`` (what to open in the notebook's browser), ``stop()``."""

    def __init__(
        self,
        name: str,
        process: subprocess.Popen[bytes],
        port: int,
        workdir: str,
        reaper: Reaper,
        link_path: str = "/",
    ) -> None:
        self.name, self.process, self.port, self.workdir = name, process, port, workdir
        self.link_path = link_path
        self.started_at = time.time()
        self._reaper = reaper
        self._lock = threading.Lock()
        self._stopped = False
        _live_servers.add(self)

    @property
    def url(self) -> str:
        """The UI's address on this machine, ``http://127.0.0.1:<port>``."""
        return f"http://{HOST}:{self.port}"

    @property
    def link(self) -> str:
        """The link to open: through jupyter-server-proxy in JupyterHub, else the direct address."""
        return browser_link(self.url, self.link_path)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def stopped(self) -> bool:
        return self._stopped

    @property
    def log_path(self) -> str:
        return os.path.join(self.workdir, "server.log")

    def log_tail(self) -> str:
        try:
            with open(self.log_path, errors="replace") as log:
                return log.read()[-LOG_TAIL_CHARS:]
        except OSError:
            return ""

    def stop(self) -> None:
        """End the UI and every process it started, free its port, remove its folder. Idempotent."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            _live_servers.discard(self)
        _end_group(self.process)
        self._reaper.finish()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> LocalServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "stopped" if self._stopped else f"running at {self.link}"
        return f"<{self.name} {state}>"

    def _repr_html_(self) -> str:
        if self._stopped:
            return f"<div><strong>{html.escape(self.name)}</strong>: stopped</div>"
        return (
            f'<div><strong>{html.escape(self.name)}</strong>: <a href="{html.escape(self.link)}" '
            f'target="_blank">open {html.escape(self.name)}</a> (stop it with <code>.stop()</code>)</div>'
        )


def _end_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process's group, SIGKILL it after ``STOP_GRACE_SECONDS``, and reap the process."""
    for sig, wait in ((signal.SIGTERM, STOP_GRACE_SECONDS), (signal.SIGKILL, STOP_GRACE_SECONDS)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            process.poll()
            try:
                os.killpg(process.pid, 0)  # is anyone of the group left?
            except ProcessLookupError:
                return
            time.sleep(0.05)
    process.poll()


def answers(url: str, timeout: float = 2.0) -> bool:
    """Whether a GET of ``url`` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.HTTPError):
        return False


def start_server(
    name: str,
    command: Callable[[int], Sequence[str]],
    *,
    ready_path: str,
    timeout: float,
    link_path: str = "/",
    env: Mapping[str, str] | None = None,
) -> LocalServer:
    """Start ``command(port)`` (which must serve HTTP on 127.0.0.1:port) and wait until ``ready_path`` answers.

    Raises :class:`~occam.errors.ServerStartError`, with the end of the UI's log, when it exits or does not
    answer within ``timeout`` seconds; nothing of it is left running then.
    """
    port = free_port()
    workdir = tempfile.mkdtemp(prefix=f"occam-{name.lower().replace(' ', '-')}-")
    with open(os.path.join(workdir, "server.log"), "wb") as log:
        process = subprocess.Popen(
            list(command(port)),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=None if env is None else dict(env),
            cwd=workdir,
        )
    reaper = Reaper()
    reaper.watch_pid(process.pid)
    reaper.remove_dir_on_exit(workdir)
    server = LocalServer(name, process, port, workdir, reaper, link_path)
    deadline = time.monotonic() + timeout
    while not answers(server.url + ready_path):
        problem = None
        if process.poll() is not None:
            problem = f"{name} exited with status {process.returncode} before it answered"
        elif time.monotonic() > deadline:
            problem = f"{name} did not answer GET {ready_path} on {server.url} within {timeout:.0f} s"
        if problem:
            tail = server.log_tail()
            server.stop()
            raise ServerStartError(f"{problem}. Raise timeout= if the machine is just slow, or read its log:\n{tail}")
        time.sleep(POLL_SECONDS)
    return server
