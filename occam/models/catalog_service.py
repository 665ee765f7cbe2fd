"""The course catalog service: the only writer of the course catalog, run as a JupyterHub service.

``python -m occam.models.catalog_service --catalog-dir /srv/catalog`` serves, under the service's prefix
(``JUPYTERHUB_SERVICE_PREFIX``, ``/services/occam-catalog/``, where the hub's proxy routes it):

====================================================  =========================================================
``PUT  api/models/<owner>/<name>/<version>``          add that version: the body is :func:`~occam.models.catalog.pack_version`'s archive
``DELETE api/models/<owner>/<name>/<version>``        remove it
``GET  api/health``                                   ``{"status": 200, ...}``, no token needed (readiness)
====================================================  =========================================================

Who asks is what the hub says: every request carries the student's JupyterHub token (``Authorization:
token <token>``, the notebook's ``JUPYTERHUB_API_TOKEN``), and the service asks the hub's ``GET /hub/api/user``
with that token who it belongs to. A name in the request (the URL's ``<owner>``, the metadata's owner) must be
that user's, or the answer is 403; no token or one the hub does not know is 401; a version that exists is 409
(versions never change); a body over ``--max-bytes`` is 413. Answers are :class:`~occam.models.catalog.CatalogReply`
JSON. Tokens are never logged.

JupyterHub can start it (``c.JupyterHub.services`` with a ``command``: the hub then sets ``JUPYTERHUB_API_URL``,
``JUPYTERHUB_SERVICE_URL`` and the prefix), or it runs in a pod of its own (the chart) with those set. Needs
tornado (in the hub image and the notebook image), not TensorFlow.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import signal
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tornado import httpclient, httpserver, web

from occam import config
from occam.contract import CATALOG_SERVICE_NAME
from occam.errors import ModelError
from occam.models import catalog
from occam.models.catalog import CatalogReply

log = logging.getLogger("occam.catalog")

#: ``Authorization: token <t>`` or ``Bearer <t>``.
_AUTHORIZATION = re.compile(r"(?:token|bearer)\s+(\S+)", re.IGNORECASE)
#: Seconds the hub may take to say whose a token is.
HUB_TIMEOUT = 20.0
#: A body declared up to this many times the cap is read (and dropped) so that its 413 reaches the student.
DRAIN_FACTOR = 4


@dataclass(frozen=True)
class ServiceSettings:
    """What the service needs: the catalog's root (read-write here only), the hub's API, its URL prefix, the
    largest upload, and where it listens."""

    catalog_dir: Path
    hub_api_url: str
    prefix: str = f"/services/{CATALOG_SERVICE_NAME}/"
    max_bytes: int = 512 * 1024 * 1024
    ip: str = "127.0.0.1"
    port: int = 8080


class CallerUnknown(Exception):
    """The request's token names no user (none given, or the hub does not know it): 401."""


async def caller_of(authorization: str, hub_api_url: str) -> str:
    """The JupyterHub user whose token ``authorization`` carries, as the hub says (``GET <hub api>/user``)."""
    match = _AUTHORIZATION.fullmatch(authorization.strip())
    if match is None:
        raise CallerUnknown(
            "no JupyterHub token: send 'Authorization: token <your JupyterHub API token>' (in a notebook, "
            "$JUPYTERHUB_API_TOKEN; occam.models.publish does it for you)"
        )
    request = httpclient.HTTPRequest(
        hub_api_url.rstrip("/") + "/user",
        headers={"Authorization": f"token {match.group(1)}"},
        request_timeout=HUB_TIMEOUT,
    )
    try:
        response = await httpclient.AsyncHTTPClient().fetch(request, raise_error=False)
    except OSError as exc:
        raise web.HTTPError(502, reason=f"the catalog service cannot reach the hub's API ({exc}); try again") from None
    if response.code in (401, 403):
        raise CallerUnknown("the hub does not accept this token: use your own, current JupyterHub API token")
    if response.code != 200:
        raise web.HTTPError(502, reason=f"the hub's API answered {response.code} when asked whose the token is")
    model = json.loads(response.body)
    if model.get("kind", "user") != "user" or not isinstance(model.get("name"), str):
        raise CallerUnknown("this token is not a user's: the catalog takes a student's own JupyterHub token")
    return str(model["name"])


class Handler(web.RequestHandler):
    settings_: ServiceSettings

    def initialize(self, settings: ServiceSettings) -> None:
        self.settings_ = settings

    def answer(self, reply: CatalogReply) -> None:
        self.set_status(reply.status)
        self.set_header("Content-Type", "application/json")
        self.finish(reply.to_json())

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        reason = self._reason if status_code != 500 else "the catalog service failed; its log says why"
        self.answer(CatalogReply(status=status_code, message=reason))

    def check_xsrf_cookie(self) -> None:
        """Token-authenticated API (no cookies are read), so cross-site request forgery does not apply."""


class HealthHandler(Handler):
    def get(self) -> None:
        self.answer(CatalogReply(status=200, message="the course catalog service is running"))


@web.stream_request_body
class VersionHandler(Handler):
    """``PUT`` / ``DELETE`` of one version; the body streams into a temporary file, counted against the cap."""

    caller: str | None = None
    body: Any = None
    received = 0
    too_big = False

    async def prepare(self) -> None:
        # Who asks, before a byte of the body is read: a stranger's upload is never stored, even for a moment.
        try:
            self.caller = await caller_of(self.request.headers.get("Authorization", ""), self.settings_.hub_api_url)
        except CallerUnknown as exc:
            self.answer(CatalogReply(status=401, message=str(exc)))
            return
        if self.request.method == "PUT":
            declared = self.request.headers.get("Content-Length", "")
            size = int(declared) if declared.isdigit() else 0
            if size > DRAIN_FACTOR * self.settings_.max_bytes:
                self.answer(self._too_big())  # not worth reading: the connection closes after this answer
                return
            # A body over the cap is read and dropped, then answered 413: answering before the body is read
            # closes the connection, and the hub's proxy would show its own error page instead of the reason.
            self.too_big = size > self.settings_.max_bytes
            self.request.connection.set_max_body_size(max(size, self.settings_.max_bytes) + 1)  # type: ignore[union-attr]
            self.body = tempfile.TemporaryFile()  # noqa: SIM115 - closed in on_finish, whatever the answer

    def _too_big(self) -> CatalogReply:
        return CatalogReply(
            status=413,
            message=f"the upload is over the catalog's limit of {self.settings_.max_bytes} bytes: share a smaller "
            "model, or ask the course admin to raise occam.catalog.maxBytes",
        )

    def data_received(self, chunk: bytes) -> None:
        if self.body is None or self.too_big:
            return
        self.received += len(chunk)
        if self.received > self.settings_.max_bytes:
            self.too_big = True
            return
        self.body.write(chunk)

    def on_finish(self) -> None:
        if self.body is not None:
            self.body.close()

    async def put(self, owner: str, name: str, version: str) -> None:
        assert self.caller is not None and self.body is not None
        if self.too_big:
            self.answer(self._too_big())
            return
        self.body.seek(0)
        ref = f"{owner}/{name}:{version}"
        try:
            await asyncio.to_thread(
                catalog.add_version,
                self.settings_.catalog_dir,
                self.caller,
                owner,
                name,
                int(version),
                self.body,
                max_bytes=self.settings_.max_bytes,
            )
        except ModelError as exc:
            log.warning("refused %s's upload of %s: %s", self.caller, ref, exc)
            self.answer(catalog.reply_for(exc))
            return
        log.info("%s added %s", self.caller, ref)
        self.answer(CatalogReply(status=201, message=f"{ref} is in the course catalog", ref=ref))

    async def delete(self, owner: str, name: str, version: str) -> None:
        assert self.caller is not None
        ref = f"{owner}/{name}:{version}"
        try:
            await asyncio.to_thread(
                catalog.remove_version, self.settings_.catalog_dir, self.caller, owner, name, int(version)
            )
        except ModelError as exc:
            log.warning("refused %s's removal of %s: %s", self.caller, ref, exc)
            self.answer(catalog.reply_for(exc))
            return
        log.info("%s removed %s", self.caller, ref)
        self.answer(CatalogReply(status=200, message=f"{ref} is no longer in the course catalog", ref=ref))


def make_app(settings: ServiceSettings) -> web.Application:
    prefix = "/" + settings.prefix.strip("/") + "/"
    part = r"([^/]+)"
    return web.Application(
        [
            (rf"{prefix}api/health", HealthHandler, {"settings": settings}),
            (rf"{prefix}api/models/{part}/{part}/(\d+)", VersionHandler, {"settings": settings}),
        ],
        default_handler_class=_NotFound,
        default_handler_args={"settings": settings},
    )


class _NotFound(Handler):
    def prepare(self) -> None:
        self.answer(
            CatalogReply(status=404, message=f"no such catalog request: {self.request.method} {self.request.path}")
        )


def settings_from(argv: list[str] | None = None, environ: dict[str, str] | None = None) -> ServiceSettings:
    """The service's settings from its command line and the environment JupyterHub gives a service."""
    env = dict(os.environ if environ is None else environ)
    parser = argparse.ArgumentParser(prog="python -m occam.models.catalog_service", description=__doc__.split("\n")[0])
    parser.add_argument("--catalog-dir", required=True, help="the catalog's root, mounted read-write here only")
    parser.add_argument(
        "--ip", default=None, help="address to listen on (default: JUPYTERHUB_SERVICE_URL's, else 127.0.0.1)"
    )
    parser.add_argument("--port", type=int, default=None, help="port (default: JUPYTERHUB_SERVICE_URL's, else 8080)")
    parser.add_argument(
        "--max-bytes", type=int, default=None, help="largest upload (default: OCCAM_CATALOG_MAX_BYTES, 512 MiB)"
    )
    args = parser.parse_args(argv)
    hub_api = env.get("JUPYTERHUB_API_URL")
    if not hub_api:
        parser.error("JUPYTERHUB_API_URL is not set: the service asks the hub whose each token is (the hub sets it)")
    service_url = urlsplit(env.get("JUPYTERHUB_SERVICE_URL", ""))
    catalog_dir = Path(args.catalog_dir)
    if not catalog_dir.is_dir():
        parser.error(f"--catalog-dir {catalog_dir} is not a folder: mount the catalog's volume there")
    return ServiceSettings(
        catalog_dir=catalog_dir,
        hub_api_url=hub_api,
        prefix=env.get("JUPYTERHUB_SERVICE_PREFIX") or f"/services/{CATALOG_SERVICE_NAME}/",
        max_bytes=args.max_bytes or int(config.get("catalog_max_bytes", environ=env)),
        ip=args.ip or service_url.hostname or "127.0.0.1",
        port=args.port or service_url.port or 8080,
    )


async def serve(settings: ServiceSettings) -> None:
    """Serve until SIGTERM or SIGINT."""
    server = httpserver.HTTPServer(make_app(settings), max_body_size=DRAIN_FACTOR * settings.max_bytes + 1)
    server.listen(settings.port, settings.ip)
    log.info("course catalog %s on http://%s:%d%s", settings.catalog_dir, settings.ip, settings.port, settings.prefix)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    server.stop()
    await server.close_all_connections()


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(serve(settings_from(argv)))


if __name__ == "__main__":
    main()
