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

In a notebook pod on Kubernetes the backend runs the service instead, as a Deployment and ClusterIP Service
of the notebook's namespace (:mod:`occam.models.serving_pod`, :mod:`occam.backends.kubernetes_serving`);
``where="process"`` keeps it a process there too.
"""

from __future__ import annotations

import atexit
import contextlib
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
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from occam import config, links
from occam.backends import Backend, select_backend
from occam.errors import ConfigError, ServiceStartError
from occam.models import serving_pod
from occam.models.service import DOCS_PATH, SPEC_PATH, BaseModelService
from occam.models.store import ModelEntry, resolve
from occam.reaper import Reaper

__all__ = ["DOCS_PATH", "SPEC_PATH", "WHERE", "BaseModelService", "ModelService", "serve", "stop_service"]

POLL_SECONDS = 0.1
STOP_GRACE_SECONDS = 20.0
#: Where a service runs: ``serve(where=...)``; None lets the backend decide.
WHERE = ("process", "kubernetes")

_live_services: weakref.WeakSet[ModelService] = weakref.WeakSet()


@atexit.register
def _stop_all_at_exit() -> None:
    for service in list(_live_services):
        service.stop()


class ModelService(BaseModelService):
    """A model service running as a process beside the notebook. ``url`` is its base address from this machine
    (the notebook); ``link`` is what a browser opens (through jupyter-server-proxy under JupyterHub)."""

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
        super().__init__(entry, token)
        self.host = host
        self.port = port
        self.base_path = base_path
        self._process = process
        self._reaper = reaper
        self._work_dir = work_dir
        self._stopped = False

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{self.base_path}"

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


def _check_where(where: object, keep: object) -> None:
    if where is not None and where not in WHERE:
        raise ConfigError(
            f"where={where!r} is not a place a model service runs; use one of {', '.join(map(repr, WHERE))}, "
            "or leave it out (on Kubernetes a Deployment, elsewhere a process)"
        )
    if not isinstance(keep, bool):
        raise ConfigError(f"keep={keep!r} must be True or False")


def pod_backend(where: str | None, environ: Mapping[str, str] | None = None) -> type[Backend] | None:
    """The backend that runs ``serve(where=where)``'s service in its cluster manager, or None for a process:
    the Kubernetes backend when asked, else (``where=None``) this environment's backend if it says so."""
    if where == "process":
        return None
    env = os.environ if environ is None else environ
    backend = select_backend("kubernetes" if where == "kubernetes" else config.get("backend", environ=env), env)
    return backend if where == "kubernetes" or backend.serves_models_in_pods(env) else None


def stop_service(ref: str, *, root: str | os.PathLike[str] | None = None) -> None:
    """Stop the model service of ``ref`` that this environment's backend runs (on Kubernetes: one kept by an
    earlier notebook, in this namespace), and wait until it is gone."""
    entry = resolve(ref, root=root)
    backend = pod_backend("kubernetes")
    assert backend is not None
    backend.stop_model_service(entry.metadata.name, entry.metadata.version, os.environ)


def serve(
    ref: str,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    token: str | None = None,
    timeout: float | None = None,
    max_bytes: int | None = None,
    root: str | os.PathLike[str] | None = None,
    keep: bool = False,
    where: str | None = None,
) -> BaseModelService:
    """Start a web service for the published model ``ref`` (``name``, ``name:3``, ``owner/name:3``).

    It answers the DEEPaaS v2 API: ``GET {url}/v2/models/{name}/`` (metadata: labels, input shape and dtype,
    metrics), ``POST {url}/v2/models/{name}/predict/`` with an image file (multipart field ``data``) or a JSON
    array (``{"instances": [...]}``), ``{url}/swagger.json`` (OpenAPI) and ``{url}/api`` (Swagger UI). Every
    request needs ``token`` (default: a fresh random secret, ``service.token``). ``max_bytes`` caps a request's
    body (``OCCAM_SERVE_MAX_BYTES``, 8 MiB); ``timeout`` bounds start-up (``OCCAM_SERVE_TIMEOUT``, 120 s).

    Where it runs: in a notebook pod on Kubernetes, a Deployment and ClusterIP Service of the notebook's
    namespace (:class:`~occam.models.serving_pod.PodModelService`: counted by the quota, deleted with the
    notebook unless ``keep=True``); elsewhere, or with ``where="process"``, a process beside the notebook
    (:class:`ModelService`), listening on ``host`` (``127.0.0.1`` unless others must reach it directly) and
    ``port`` (None: any free port). ``where="kubernetes"`` insists on pods.
    """
    _check_where(where, keep)
    _check_arguments(host, port, token)
    backend = pod_backend(where)
    in_pods = backend is not None
    if in_pods and (host != "127.0.0.1" or port is not None):
        raise ConfigError(
            "host and port choose where a process listens; a model service on Kubernetes listens in its own pod "
            "behind its Service: leave them out, or pass where='process' to serve beside the notebook"
        )
    if keep and not in_pods:
        raise ConfigError(
            "keep=True keeps a model service on Kubernetes after the notebook stops; a process always ends with "
            "the notebook's kernel: leave keep out, or serve from a notebook pod"
        )
    entry = resolve(ref, root=root)
    wait = float(config.get("serve_timeout", timeout))
    limit = int(config.get("serve_max_bytes", max_bytes))
    secret = token or secrets.token_urlsafe(32)
    if backend is not None:
        return serving_pod.serve_in_pods(backend, entry, token=secret, timeout=wait, max_bytes=limit, keep=keep)
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
