"""The notebook's side of the course catalog: ask the catalog service to add or remove a version.

``OCCAM_CATALOG_URL`` (setting ``catalog_url``, set by the spawner) is the service's address; each request
carries the student's own JupyterHub token (``JUPYTERHUB_API_TOKEN``, which JupyterHub puts in the notebook),
in a header only: never in the URL, the log or an error message. Reading the catalog needs no service: it is
mounted read-only at ``OCCAM_CATALOG_DIR`` (setting ``catalog_dir``).
"""

from __future__ import annotations

import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from occam import config
from occam.contract import CATALOG_URL_ENV, JUPYTERHUB_API_TOKEN_ENV
from occam.errors import CatalogError, ModelError, ModelExistsError, ModelNotFoundError, ModelPermissionError
from occam.models.catalog import CatalogReply, pack_version


def catalog_url() -> str | None:
    """The catalog service's URL, or None when there is no catalog (one machine, or the course has none)."""
    url = config.get("catalog_url")
    return str(url).rstrip("/") + "/" if url else None


def catalog_dir() -> Path | None:
    """Where the catalog is mounted (read-only), or None."""
    path = config.get("catalog_dir")
    return Path(os.path.expanduser(str(path))) if path else None


def _token() -> str:
    token = (os.environ.get(JUPYTERHUB_API_TOKEN_ENV) or "").strip()
    if not token:
        raise CatalogError(
            f"sharing through the course catalog needs your JupyterHub token, and {JUPYTERHUB_API_TOKEN_ENV} is not "
            "set: publish from a notebook started by JupyterHub, or set it to a token from the hub's Token page"
        )
    return token


def _request(method: str, path: str, body: bytes | None = None) -> CatalogReply:
    base = catalog_url()
    if base is None:
        raise CatalogError(f"no course catalog: {CATALOG_URL_ENV} is not set")
    url = urllib.parse.urljoin(base, path)
    request = urllib.request.Request(url, data=body, method=method)
    request.add_header("Authorization", f"token {_token()}")
    if body is not None:
        request.add_header("Content-Type", "application/x-tar")
    timeout = float(config.get("catalog_timeout"))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return CatalogReply.from_json(response.read(), response.status)
    except urllib.error.HTTPError as exc:
        reply = CatalogReply.from_json(exc.read(), exc.code)
        return CatalogReply(status=exc.code, message=reply.message, ref=reply.ref)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise CatalogError(
            f"the course catalog at {base} did not answer ({reason}) within {timeout:.0f} s: try again; if it "
            f"persists, tell the course admin (the hub's occam-catalog service, {CATALOG_URL_ENV})"
        ) from None


def _raise_for(reply: CatalogReply, what: str) -> None:
    if reply.status < 300:
        return
    message = f"the course catalog refused to {what}: {reply.message}"
    if reply.status == 401:
        raise ModelPermissionError(message + f" (is {JUPYTERHUB_API_TOKEN_ENV} your current token?)")
    if reply.status == 403:
        raise ModelPermissionError(message)
    if reply.status == 404:
        raise ModelNotFoundError(message)
    if reply.status == 409:
        raise ModelExistsError(message + "; publish again for a new version")
    if reply.status in (400, 413):
        raise ModelError(message)
    if reply.status in (502, 503, 504):
        raise CatalogError(
            f"the course catalog service is not answering (HTTP {reply.status} from the hub's proxy): try again in "
            "a minute; if it persists, tell the course admin (the occam-catalog pod)"
        )
    raise CatalogError(f"{message} (HTTP {reply.status}); tell the course admin if it persists")


def _path(owner: str, name: str, version: int) -> str:
    return "api/models/" + "/".join(urllib.parse.quote(part, safe="") for part in (owner, name, str(version)))


def upload(version_dir: Path, owner: str, name: str, version: int) -> CatalogReply:
    """Copy the published version in ``version_dir`` into the course catalog, as ``owner/name:version``."""
    reply = _request("PUT", _path(owner, name, version), pack_version(version_dir))
    _raise_for(reply, f"add {owner}/{name}:{version}")
    return reply


def remove(owner: str, name: str, version: int, *, missing_ok: bool = True) -> CatalogReply:
    """Remove ``owner/name:version`` from the course catalog (the service checks that it is the caller's)."""
    reply = _request("DELETE", _path(owner, name, version))
    if reply.status == 404 and missing_ok:
        return reply
    _raise_for(reply, f"remove {owner}/{name}:{version}")
    return reply
