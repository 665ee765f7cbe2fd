"""The serving process: one published model behind the DEEPaaS API (``deepaas``), with a token on every route.

Started by :func:`occam.models.serving.serve` as ``python -m occam.models.serving_app --model-dir DIR ...``. It
reads its token from the first line of stdin (never argv or the environment, which others may read) and keeps
stdin open as its lifeline: when it reaches end of file, because the parent stopped the service or died, the
process shuts down; it also does if the parent process is gone. When the socket listens and the model is loaded
it writes ``{"port": N}`` to ``--ready-file``. In a pod of its own (:mod:`occam.kubernetes.serving`) it
reads the token from ``--token-file`` (a mounted Secret) instead, and Kubernetes ends it. With
``--idle-exit SECONDS`` it also ends by itself, exit status 0, once that long has passed with no request (any
route, answered or refused; its start counts as one): a kept service's Job then finishes and Kubernetes deletes
it, which gives back its CPU and memory.

The model is registered with DEEPaaS in-process (``deepaas.model.v2.MODELS``) rather than through a
``deepaas.v2.model`` entry point, so nothing needs to be installed to serve a model. Two middlewares wrap
DEEPaaS's routes: :func:`require_token` (every route, the Swagger UI too) and :func:`bad_input_as_400`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import html
import json
import logging
import os
import socket
import sys
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psutil
from aiohttp import web

from occam.models.deepaas_model import BadInput, StoreModel

LOG = logging.getLogger("occam.serving")
#: The cookie the docs page's login sets, so the Swagger UI's own requests carry the token.
TOKEN_COOKIE = "occam-serve-token"
#: A header that carries the token when ``Authorization`` is taken by something in front (JupyterHub's proxy).
TOKEN_HEADER = "X-Occam-Token"
LOGIN_PATH = "/login"
DOCS_PATH = "/api"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def presented_tokens(request: web.Request) -> list[str]:
    """Every token a request carries: ``Authorization: token|Bearer``, the header, the cookie, ``?token=``.

    Behind jupyter-server-proxy, ``Authorization`` holds the hub's token (the proxy passes it on), so the
    service's own may come in :data:`TOKEN_HEADER` beside it: any one that matches lets the request in.
    """
    found = []
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() in ("token", "bearer") and value.strip():
        found.append(value.strip())
    for candidate in (request.headers.get(TOKEN_HEADER), request.cookies.get(TOKEN_COOKIE), request.query.get("token")):
        if candidate:
            found.append(candidate)
    return found


def _login_page(base_path: str, message: str) -> str:
    action = html.escape(base_path + LOGIN_PATH, quote=True)
    return (
        "<!doctype html><html><head><title>Occam model service</title></head><body>"
        f"<h1>Occam model service</h1><p>{html.escape(message)}</p>"
        f'<form method="post" action="{action}"><label>Token <input type="password" name="token" id="token">'
        '</label> <button type="submit" id="login">Open the API page</button></form></body></html>'
    )


def make_auth_middleware(token: str, base_path: str) -> Any:
    """A middleware that lets through only requests carrying ``token``; a browser gets a login form."""
    expected = token.encode()

    def _valid(candidate: str | None) -> bool:
        return candidate is not None and hmac.compare_digest(candidate.encode(), expected)

    def _with_cookie(response: web.StreamResponse, request: web.Request) -> web.StreamResponse:
        response.set_cookie(
            TOKEN_COOKIE, token, httponly=True, samesite="Strict", path=base_path or "/", secure=request.secure
        )
        return response

    @web.middleware
    async def require_token(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "POST" and request.path == base_path + LOGIN_PATH:
            form = await request.post()
            candidate = form.get("token")
            if isinstance(candidate, str) and _valid(candidate):
                return _with_cookie(web.HTTPSeeOther(base_path + DOCS_PATH), request)
            return web.Response(
                status=403, text=_login_page(base_path, "That token is wrong."), content_type="text/html"
            )
        candidates = presented_tokens(request)
        if not any(_valid(candidate) for candidate in candidates):
            status = 403 if candidates else 401
            message = (
                "this model service needs its token: send 'Authorization: token <token>' (service.token in the "
                "notebook that started it)"
                if status == 401
                else "the token sent is not this service's token"
            )
            if "text/html" in request.headers.get("Accept", ""):
                return web.Response(status=status, text=_login_page(base_path, message), content_type="text/html")
            return web.json_response({"message": message}, status=status)
        if "token" in request.query and request.method == "GET":
            # A link with ?token=: keep it in a cookie and drop it from the address bar and history.
            clean = request.rel_url.with_query([(k, v) for k, v in request.query.items() if k != "token"])
            return _with_cookie(web.HTTPSeeOther(str(clean)), request)
        return await handler(request)

    return require_token


def make_error_middleware(max_bytes: int, expected: str) -> Any:
    """Whatever a client sends wrong is a 400 naming what is expected; an unexpected failure is a 500, logged."""

    @web.middleware
    async def bad_input_as_400(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except BadInput as exc:
            return web.json_response({"message": str(exc)}, status=400)
        except web.HTTPRequestEntityTooLarge:
            message = f"the request is larger than this service's limit of {max_bytes} bytes; send {expected}"
            return web.json_response({"message": message}, status=400)
        except web.HTTPUnprocessableEntity as exc:
            # webargs refused an argument (e.g. top_k=0): a 400 like any other bad input.
            return web.json_response({"message": f"{exc.text}; send {expected}"}, status=400)
        except web.HTTPException:
            raise
        except Exception:
            LOG.exception("prediction failed")
            return web.json_response({"message": "the model failed on this input; see the service's log"}, status=500)

    return bad_input_as_400


async def build_app(model: StoreModel, token: str, base_path: str, max_bytes: int) -> web.Application:
    """DEEPaaS's application (v2 API, OpenAPI spec, Swagger UI) serving ``model`` alone, behind the token."""
    from deepaas import api, config
    from deepaas import model as deepaas_model
    from deepaas.model.v2 import wrapper

    config.prepare_logging()
    config.CONF([], project="deepaas", default_config_files=[])
    config.CONF.set_override("client_max_size", max_bytes)
    config.CONF.set_override("workers", 1)
    config.CONF.set_override("warm", True)
    name = model.metadata["name"]
    deepaas_model.v2.MODELS.clear()
    deepaas_model.v2.MODELS[name] = wrapper.ModelWrapper(name, model, None)
    deepaas_model.v2.MODELS_LOADED = True
    app: web.Application = await api.get_app(
        enable_train=False, enable_predict=True, doc=DOCS_PATH, base_path=base_path
    )
    # Before DEEPaaS's own: the token is checked before anything else reads the request.
    app.middlewares.insert(0, make_error_middleware(max_bytes, model.expected))
    app.middlewares.insert(0, make_auth_middleware(token, base_path))
    app.on_cleanup.append(lambda _app: deepaas_model.v2.MODELS[name]._close_executors(_app))
    return app


def make_activity_middleware(touch: Callable[[], None]) -> Any:
    """A middleware that calls ``touch`` on every request, before anything else looks at it."""

    @web.middleware
    async def note_activity(request: web.Request, handler: Handler) -> web.StreamResponse:
        touch()
        try:
            return await handler(request)
        finally:
            touch()  # a long prediction counts until it ends

    return note_activity


async def stop_when_idle(idle_seconds: float, last_activity: Callable[[], float], stop: Callable[[], None]) -> None:
    """Call ``stop`` once ``idle_seconds`` have passed since ``last_activity()`` (the event loop's clock)."""
    loop = asyncio.get_running_loop()
    while True:
        left = last_activity() + idle_seconds - loop.time()
        if left <= 0:
            LOG.info("no request for %g s (--idle-exit): stopping", idle_seconds)
            stop()
            return
        await asyncio.sleep(min(left, 5.0) + 0.05)


def _watch_parent(stop: Callable[[], None]) -> None:
    """Stop when stdin reaches end of file (the parent stopped us, or died) or the parent process is gone."""
    parent = psutil.Process(os.getppid())

    def lifeline() -> None:
        with contextlib.suppress(OSError, ValueError):
            while sys.stdin.buffer.read(4096):
                pass
        stop()

    def parent_alive() -> None:
        while parent.is_running() and parent.status() != psutil.STATUS_ZOMBIE:
            threading.Event().wait(1.0)
        stop()

    threading.Thread(target=lifeline, name="stdin-lifeline", daemon=True).start()
    threading.Thread(target=parent_alive, name="parent-watch", daemon=True).start()


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
    with contextlib.suppress(RuntimeError):  # the loop has already closed
        loop.call_soon_threadsafe(callback)


async def run(args: argparse.Namespace, token: str) -> None:
    metadata = json.loads((Path(args.model_dir) / "metadata.json").read_text())
    model = StoreModel(str(Path(args.model_dir) / "model.keras"), metadata)
    listener = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((args.host, args.port))
    except OSError as exc:
        listener.close()
        raise SystemExit(
            f"cannot listen on {args.host} port {args.port} ({exc.strerror}): choose another port, or none"
        ) from None
    port = listener.getsockname()[1]
    # Behind jupyter-server-proxy's /proxy/absolute/<port>/ the paths keep their prefix, so the Swagger UI's
    # links (absolute paths) stay right.
    base_path = args.proxy_base.format(port=port).rstrip("/") if args.proxy_base else ""
    app = await build_app(model, token, base_path, args.max_bytes)
    loop = asyncio.get_running_loop()
    last = [loop.time()]  # the start counts as activity

    def touch() -> None:
        last[0] = loop.time()

    app.middlewares.insert(0, make_activity_middleware(touch))
    runner = web.AppRunner(app, access_log=None)  # an access log would record ?token= links
    await runner.setup()
    site = web.SockSite(runner, listener)
    await site.start()
    finished = asyncio.Event()
    idle_watch = None
    if args.idle_exit:
        touch()  # loading the model took a while: the limit counts from now
        idle_watch = asyncio.create_task(stop_when_idle(args.idle_exit, lambda: last[0], finished.set))
    if not args.token_file:  # in its own pod, Kubernetes ends the service; else the parent's lifeline does
        _watch_parent(lambda: _call_soon(loop, finished.set))
    ready = Path(args.ready_file)
    ready.with_suffix(".tmp").write_text(json.dumps({"port": port, "base_path": base_path}))
    ready.with_suffix(".tmp").rename(ready)
    try:
        await finished.wait()
    finally:
        if idle_watch is not None:
            idle_watch.cancel()
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m occam.models.serving_app")
    parser.add_argument("--model-dir", required=True, help="the store version's folder")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument("--ready-file", required=True, help="written with the port once serving")
    parser.add_argument("--max-bytes", type=int, required=True, help="largest request body accepted")
    parser.add_argument("--proxy-base", default="", help="path prefix, '{port}' filled in (JupyterHub)")
    parser.add_argument(
        "--token-file", default=None, help="read the token here (a Kubernetes Secret), not stdin; no lifeline"
    )
    parser.add_argument(
        "--idle-exit", type=float, default=0.0, help="exit (status 0) after this many seconds with no request; 0: never"
    )
    args = parser.parse_args(argv)
    if args.idle_exit < 0:
        parser.error(f"--idle-exit {args.idle_exit:g} must be 0 (never) or more seconds")
    token = (Path(args.token_file).read_text() if args.token_file else sys.stdin.readline()).strip()
    if not token:
        print("no token given: the service never runs without one", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(run(args, token))
    return 0


if __name__ == "__main__":
    sys.exit(main())
