"""Serve a published model as a web service: the DEEPaaS API (OpenAPI, Swagger UI) in a local process.

    service = occam.models.serve("digits-cnn")      # waits until the model answers
    service.url, service.token                       # http://127.0.0.1:PORT, the secret every request needs
    service.stop()                                   # or: with occam.models.serve(...) as service:

The service runs as a separate process (:mod:`occam.models.serving_app`), cleaned up like a cluster: ``stop()``,
the context manager, an ``atexit`` hook, and an :class:`occam.reaper.Reaper` that ends it and its worker with
the notebook's kernel even when the kernel is killed. It is never anonymous: every route wants the token, a
fresh random secret unless one is given, handed to the process on its stdin (never argv or the environment).
Under JupyterHub its page is reached through jupyter-server-proxy (:func:`occam.links.proxy_path`),
behind the hub's own login as well.
"""

from __future__ import annotations

import atexit
import contextlib
import html
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import weakref
from pathlib import Path
from typing import IO, Any

from occam import config, links
from occam.errors import ConfigError, ServiceStartError
from occam.models.store import ModelEntry, resolve
from occam.reaper import Reaper

POLL_SECONDS = 0.1
STOP_GRACE_SECONDS = 20.0
#: Where DEEPaaS serves the Swagger UI page, the OpenAPI spec and the v2 API, under the service's base path.
DOCS_PATH = "/api"
SPEC_PATH = "/swagger.json"

_live_services: weakref.WeakSet[ModelService] = weakref.WeakSet()


@atexit.register
def _stop_all_at_exit() -> None:
    for service in list(_live_services):
        service.stop()


class ModelService:
    """A running model service. ``url`` is its base address from this machine (the notebook), ``token`` the
    secret each request sends as ``Authorization: token <token>``; ``link`` is what a browser opens (through
    jupyter-server-proxy under JupyterHub)."""

    def __init__(
        self,
        entry: ModelEntry,
        *,
        host: str,
        port: int,
        base_path: str,
        token: str,
        process: subprocess.Popen[bytes],
        reaper: Reaper,
        work_dir: str,
    ) -> None:
        self.entry = entry
        self.host = host
        self.port = port
        self.base_path = base_path
        self._token = token
        self._process = process
        self._reaper = reaper
        self._work_dir = work_dir
        self._stopped = False

    @property
    def ref(self) -> str:
        return self.entry.metadata.ref

    @property
    def token(self) -> str:
        """The service's secret: only the notebook that started it holds it; give it only to whom may use it."""
        return self._token

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{self.base_path}"

    @property
    def predict_url(self) -> str:
        return f"{self.url}/v2/models/{self.entry.metadata.name}/predict/"

    @property
    def metadata_url(self) -> str:
        return f"{self.url}/v2/models/{self.entry.metadata.name}/"

    @property
    def docs_url(self) -> str:
        """The Swagger UI page (it asks for the token, or takes it once as ``?token=``)."""
        return f"{self.url}{DOCS_PATH}"

    @property
    def link(self) -> str:
        """What a browser opens: through jupyter-server-proxy under JupyterHub, else the direct page."""
        if self.base_path:
            return f"{self.base_path}{DOCS_PATH}"
        return self.docs_url

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def running(self) -> bool:
        return not self._stopped and self._process.poll() is None

    def log(self) -> str:
        """The service process's output (its log), for when something goes wrong."""
        try:
            return (Path(self._work_dir) / "service.log").read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout: float = STOP_GRACE_SECONDS) -> None:
        """End the service and its worker, free its port, remove its work folder. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        _live_services.discard(self)
        if self._process.stdin is not None and not self._process.stdin.closed:
            with contextlib.suppress(OSError):
                self._process.stdin.close()  # the service's lifeline: it shuts down at end of file
        try:
            self._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _signal_group(self._process.pid, signal.SIGKILL)
            self._process.wait(timeout=timeout)
        self._reaper.finish(timeout=timeout + 10)
        shutil.rmtree(self._work_dir, ignore_errors=True)

    def __enter__(self) -> ModelService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<ModelService {self.ref} {state} at {self.url}>"

    def _repr_html_(self) -> str:
        state = "running" if self.running else "stopped"
        link = html.escape(self.link, quote=True)
        return (
            f"<div><strong>Occam model service</strong> {html.escape(self.ref)} ({html.escape(state)}): "
            f'<a href="{link}" target="_blank">API page</a> '
            f"<code>{html.escape(self.predict_url)}</code>; the token is <code>service.token</code></div>"
        )


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _check_arguments(host: object, port: object, token: object) -> None:
    if not isinstance(host, str) or not host:
        raise ConfigError(f"host={host!r} must be an address to listen on, e.g. '127.0.0.1' (the default)")
    if port is not None and (not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535):
        raise ConfigError(f"port={port!r} must be a port number from 1 to 65535, or None for any free port")
    if token is not None and (not isinstance(token, str) or len(token) < 16 or any(c.isspace() for c in token)):
        raise ConfigError(
            "token must be a secret of at least 16 characters without spaces; leave it out for a fresh random one"
        )


def _wait_ready(process: subprocess.Popen[bytes], ready: Path, log: Path, timeout: float, what: str) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready.exists():
            return dict(json.loads(ready.read_text()))
        if process.poll() is not None:
            raise ServiceStartError(
                f"the service for {what} exited with status {process.returncode} before it answered; its log:\n"
                + _tail(log)
            )
        time.sleep(POLL_SECONDS)
    raise ServiceStartError(
        f"the service for {what} did not load its model and listen within {timeout:.0f} s (OCCAM_SERVE_TIMEOUT, "
        f"or serve(..., timeout=)); its log:\n" + _tail(log)
    )


def _tail(log: Path, lines: int = 40) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def serve(
    ref: str,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    token: str | None = None,
    timeout: float | None = None,
    max_bytes: int | None = None,
    root: str | os.PathLike[str] | None = None,
) -> ModelService:
    """Start a web service for the published model ``ref`` (``name``, ``name:3``, ``owner/name:3``).

    It answers the DEEPaaS v2 API: ``GET {url}/v2/models/{name}/`` (metadata: labels, input shape and dtype,
    metrics), ``POST {url}/v2/models/{name}/predict/`` with an image file (multipart field ``data``) or a JSON
    array (``{"instances": [...]}``), ``{url}/swagger.json`` (OpenAPI) and ``{url}/api`` (Swagger UI). Every
    request needs ``token`` (default: a fresh random secret, ``service.token``). ``port=None`` takes a free
    port; ``host`` stays ``127.0.0.1`` unless others must reach it directly. ``max_bytes`` caps a request's body
    (``OCCAM_SERVE_MAX_BYTES``, 8 MiB); ``timeout`` bounds start-up (``OCCAM_SERVE_TIMEOUT``, 120 s).
    """
    _check_arguments(host, port, token)
    entry = resolve(ref, root=root)
    wait = float(config.get("serve_timeout", timeout))
    limit = int(config.get("serve_max_bytes", max_bytes))
    secret = token or secrets.token_urlsafe(32)
    work_dir = tempfile.mkdtemp(prefix="occam-serve-")  # 0700: the log and the ready file are the owner's
    ready, log_path = Path(work_dir) / "ready.json", Path(work_dir) / "service.log"
    proxy_base = links.proxy_path("{port}", absolute=True) or ""
    command = [
        sys.executable,
        "-m",
        "occam.models.serving_app",
        "--model-dir",
        str(entry.path),
        "--host",
        host,
        "--port",
        str(port or 0),
        "--ready-file",
        str(ready),
        "--max-bytes",
        str(limit),
        "--proxy-base",
        proxy_base.rstrip("/"),
    ]
    reaper = Reaper()
    reaper.remove_dir_on_exit(work_dir)
    log: IO[bytes] = open(log_path, "wb")  # noqa: SIM115 - the child holds it; closed below
    try:
        process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    except BaseException:
        log.close()
        reaper.finish()
        raise
    log.close()
    reaper.watch_pid(process.pid)
    assert process.stdin is not None
    process.stdin.write(secret.encode() + b"\n")
    process.stdin.flush()
    service = ModelService(
        entry, host=host, port=0, base_path="", token=secret, process=process, reaper=reaper, work_dir=work_dir
    )
    _live_services.add(service)
    try:
        facts = _wait_ready(process, ready, log_path, wait, entry.metadata.ref)
    except BaseException:
        service.stop()
        raise
    service.port = int(facts["port"])
    service.base_path = str(facts.get("base_path") or "")
    return service
