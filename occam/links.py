"""Links to web UIs that run next to the notebook (the Spark UI, TensorBoard, the MLflow UI).

In JupyterHub the browser cannot reach the notebook's ``127.0.0.1``: jupyter-server-proxy forwards
``<JUPYTERHUB_SERVICE_PREFIX>proxy/<port>/`` to that port, behind the hub's login, so a UI's link goes
through it there. Anywhere else (a laptop, a terminal) the direct address is the link.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import urlsplit

from occam.contract import JUPYTERHUB_SERVICE_PREFIX_ENV as SERVICE_PREFIX_ENV


def browser_link(url: str, path: str = "/", environ: Mapping[str, str] | None = None) -> str:
    """The link a notebook user opens for a UI served at ``url`` (``http://host:port``), at ``path``.

    Through jupyter-server-proxy (``<prefix>proxy/<port><path>``) when ``JUPYTERHUB_SERVICE_PREFIX`` is set,
    else ``url`` with ``path``. ``path`` starts with ``/``; keep the trailing ``/`` of a UI's root, its pages
    use relative links.
    """
    env = os.environ if environ is None else environ
    prefix = env.get(SERVICE_PREFIX_ENV)
    if not path.startswith("/"):
        path = "/" + path
    if prefix:
        port = urlsplit(url).port
        if port is None:
            raise ValueError(f"{url!r} names no port; jupyter-server-proxy forwards by port")
        return f"{prefix.rstrip('/')}/proxy/{port}{path}"
    return url.rstrip("/") + path


def proxy_path(
    port: int | str, path: str = "", *, absolute: bool = False, environ: Mapping[str, str] | None = None
) -> str | None:
    """Where the notebook's Jupyter server proxies local ``port`` under JupyterHub (jupyter-server-proxy):
    ``{prefix}proxy/{port}/{path}``, or ``{prefix}proxy/absolute/{port}/{path}`` for a server that expects the
    whole path (it then serves under that prefix itself). None outside JupyterHub."""
    prefix = (os.environ if environ is None else environ).get(SERVICE_PREFIX_ENV)
    if not prefix:
        return None
    kind = "proxy/absolute" if absolute else "proxy"
    return f"{prefix.rstrip('/')}/{kind}/{port}/{path.lstrip('/')}"
