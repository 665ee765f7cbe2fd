"""What every running model service offers, wherever it runs: its addresses, its token, stop, a notebook view.

:class:`occam.models.serving.ModelService` is a process beside the notebook; :class:`occam.models.serving_pod.
PodModelService` a Deployment and Service of the notebook's namespace on Kubernetes. Both answer the same
DEEPaaS v2 API (:mod:`occam.models.serving_app`) under ``url``, behind the same token.
"""

from __future__ import annotations

import abc
import html

from occam.models.store import ModelEntry

#: Where DEEPaaS serves the Swagger UI page, the OpenAPI spec and the v2 API, under the service's base path.
DOCS_PATH = "/api"
SPEC_PATH = "/swagger.json"


def metadata_path(name: str) -> str:
    """DEEPaaS's v2 route for model ``name`` (``GET``: its metadata; ``predict/`` below it), under the base path."""
    return f"/v2/models/{name}/"


class BaseModelService(abc.ABC):
    """A running model service: ``url`` is its base address from the notebook, ``token`` the secret each
    request sends as ``Authorization: token <token>`` (or ``X-Occam-Token`` behind JupyterHub's proxy);
    ``link`` is what a browser opens."""

    def __init__(self, entry: ModelEntry, token: str) -> None:
        self.entry = entry
        self._token = token

    @property
    def ref(self) -> str:
        return self.entry.metadata.ref

    @property
    def token(self) -> str:
        """The service's secret: only the notebook that started it holds it; give it only to whom may use it."""
        return self._token

    @property
    @abc.abstractmethod
    def url(self) -> str:
        """The service's base address from the notebook."""

    @property
    @abc.abstractmethod
    def link(self) -> str:
        """What a browser opens: the API page, through jupyter-server-proxy under JupyterHub."""

    @property
    @abc.abstractmethod
    def running(self) -> bool:
        """Whether the service is up (not stopped, and its process or pod has not ended)."""

    @abc.abstractmethod
    def log(self) -> str:
        """The service's log, for when something goes wrong ("" when there is none)."""

    @abc.abstractmethod
    def stop(self) -> None:
        """End the service and free everything it holds. Idempotent."""

    @property
    def predict_url(self) -> str:
        return f"{self.metadata_url}predict/"

    @property
    def metadata_url(self) -> str:
        return self.url + metadata_path(self.entry.metadata.name)

    @property
    def docs_url(self) -> str:
        """The Swagger UI page (it asks for the token, or takes it once as ``?token=``)."""
        return f"{self.url}{DOCS_PATH}"

    def __enter__(self) -> BaseModelService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<{type(self).__name__} {self.ref} {state} at {self.url}>"

    def _repr_html_(self) -> str:
        state = "running" if self.running else "stopped"
        link = html.escape(self.link, quote=True)
        return (
            f"<div><strong>Occam model service</strong> {html.escape(self.ref)} ({html.escape(state)}): "
            f'<a href="{link}" target="_blank">API page</a> '
            f"<code>{html.escape(self.predict_url)}</code>; the token is <code>service.token</code></div>"
        )
