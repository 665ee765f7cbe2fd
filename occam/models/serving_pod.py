"""A model service its backend runs in the cluster manager: on Kubernetes, a Deployment and ClusterIP Service
in the notebook's namespace (:mod:`occam.backends.kubernetes_serving`).

    service = occam.models.serve("digits-cnn")   # in a notebook pod: waits until the service's pod is Ready
    service.url         # http://occam-serve-digits-cnn-v3.<namespace>.svc:80/...: from the notebook's pod
    service.link        # the API page through the hub: /user/<name>/proxy/absolute/occam-serve-...:80/api
    service.stop()      # deletes the Deployment, Service and Secret and waits until the pod is gone

``keep=True`` leaves it running after the notebook stops; :func:`stop_service` (from a later notebook)
deletes it. With the hub's idle limit for kept services (``OCCAM_SERVE_KEPT_IDLE_MINUTES``) a kept one is a
Kubernetes Job that ends, and is deleted, after that long with no request.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from occam.backends import Backend
from occam.backends.base import ModelServiceRequest, RunningModelService
from occam.models.service import DOCS_PATH, BaseModelService, metadata_path
from occam.models.store import ModelEntry


class PodModelService(BaseModelService):
    """A model service running in the cluster manager (a Deployment and Service on Kubernetes)."""

    def __init__(self, entry: ModelEntry, token: str, running: RunningModelService, *, keep: bool) -> None:
        super().__init__(entry, token)
        self.keep = keep
        self._service = running
        self._stopped = False

    @property
    def url(self) -> str:
        """The Service's address from the notebook's pod (``http://<service>.<namespace>.svc:80...``)."""
        return self._service.url

    @property
    def base_path(self) -> str:
        """The path the service answers under: its path through the hub's proxy, "" outside JupyterHub."""
        return self._service.base_path

    @property
    def proxy_url(self) -> str | None:
        """The service through the hub: a path on the hub's address (behind its login), or None outside it."""
        return self._service.base_path or None

    @property
    def link(self) -> str:
        base = self._service.base_path
        return f"{base}{DOCS_PATH}" if base else self.docs_url

    @property
    def running(self) -> bool:
        return not self._stopped and self._service.running

    def log(self) -> str:
        return self._service.log()

    def stop(self) -> None:
        """Delete the service's objects and wait until its pod is gone. Idempotent."""
        if not self._stopped:
            self._stopped = True
            self._service.stop()


def serve_in_pods(
    backend: type[Backend],
    entry: ModelEntry,
    *,
    token: str,
    timeout: float,
    max_bytes: int,
    keep: bool,
    environ: Mapping[str, str] | None = None,
    **context: Any,
) -> PodModelService:
    """Ask ``backend`` to run the service of ``entry``; ``context`` goes to its ``start_model_service``."""
    request = ModelServiceRequest(
        model=entry.metadata.name,
        version=entry.metadata.version,
        ref=entry.metadata.ref,
        model_dir=str(entry.path),
        token=token,
        metadata_path=metadata_path(entry.metadata.name),
        timeout=timeout,
        max_bytes=max_bytes,
        keep=keep,
    )
    running = backend.start_model_service(request, os.environ if environ is None else environ, **context)
    return PodModelService(entry, token, running, keep=keep)
