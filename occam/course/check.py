"""``occam course check``: the smoke test an admin runs after installing or upgrading a course.

Through the hub's REST API, with an admin token (a JupyterHub API token whose scopes include
``admin:users``, ``admin:servers`` and ``access:servers``), it makes a throw-away user, starts their server
(the default profile), waits until it is ready, runs code in a kernel of that server through Jupyter's
kernel API (the proxy, the hub's auth and the student namespace all on the way), and removes the user
again, whatever happened. The default code starts a one-executor Occam cluster and trains a small Keras
model for a few steps, so the executors' image, quota, network policy and shared work volume are all
exercised; it prints :data:`OK_MARKER` at the end. Every wait has a timeout and says what it waited for.

:func:`run_check` returns the steps as :class:`CheckStep` records; :func:`report` prints them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from occam.errors import ConfigError

#: What the check's code prints last when everything worked.
OK_MARKER = "OCCAM-CHECK-OK"

#: The notebook code of the default check: a one-executor cluster and a few training steps.
DEFAULT_CODE = f"""
import numpy as np
from occam import Dataset, start_cluster

def build_model():
    import tensorflow as tf
    model = tf.keras.Sequential([tf.keras.Input((8,)), tf.keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    return model

rng = np.random.default_rng(0)
x = rng.random((256, 8), dtype=np.float32)
y = x.sum(axis=1, dtype=np.float32)
with start_cluster(n=1, progress=False) as cluster:
    print("executors:", cluster.executor_count())
    result = cluster.fit(build_model, Dataset.from_numpy(x, y), epochs=2, batch_size=32, progress=False)
    print("loss:", result.history["loss"])
print({OK_MARKER!r})
"""


@dataclass(frozen=True)
class CheckStep:
    """One step of the check: what it did, whether it worked, how long it took, and what it saw."""

    name: str
    ok: bool
    seconds: float
    detail: str = ""


class HubClient:
    """The hub's REST API (``<hub_url>/hub/api``) and the users' servers behind its proxy, with one token."""

    def __init__(self, hub_url: str, token: str, *, request_timeout: float = 30) -> None:
        if not token:
            raise ConfigError(
                "occam course check needs a hub API token with admin scopes: put it in OCCAM_HUB_TOKEN or a file "
                "named by --token-file (never on the command line)"
            )
        self.hub_url = hub_url.rstrip("/")
        self._token = token
        self.request_timeout = request_timeout

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """``method`` ``<hub_url><path>`` with the token; the JSON answer (None when empty)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.hub_url + path, data=data, method=method)
        request.add_header("Authorization", f"token {self._token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=self.request_timeout) as answer:
                text = answer.read().decode()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            raise HubError(f"{method} {path}: {exc.code} {exc.reason} {detail}".strip(), exc.code) from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise HubError(f"{method} {path}: cannot reach the hub at {self.hub_url} ({exc})", None) from None
        return json.loads(text) if text.strip() else None

    def user(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self.request("GET", f"/hub/api/users/{urllib.parse.quote(name)}")
        return found

    def users(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.request("GET", "/hub/api/users")
        return found

    def ws_url(self, path: str) -> str:
        """The websocket URL of ``path`` on the proxy (the token goes in a header, not the URL)."""
        parts = urllib.parse.urlsplit(self.hub_url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        return urllib.parse.urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + path, "", ""))

    @property
    def auth_header(self) -> dict[str, str]:
        return {"Authorization": f"token {self._token}"}


class HubError(RuntimeError):
    """The hub (or a server behind its proxy) answered with an error, or could not be reached."""

    def __init__(self, message: str, status: int | None) -> None:
        super().__init__(message)
        self.status = status


def wait_for(what: str, probe: Callable[[], Any], timeout: float, *, every: float = 2.0) -> Any:
    """``probe()``'s first truthy answer within ``timeout`` seconds; TimeoutError naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:g} s for {what}")
        time.sleep(every)


def _server(user: dict[str, Any]) -> dict[str, Any]:
    server: dict[str, Any] = (user.get("servers") or {}).get("") or {}
    return server


async def _execute(client: HubClient, kernel_path: str, code: str, timeout: float) -> tuple[str, str | None]:
    """Run ``code`` in the kernel at ``kernel_path`` (Jupyter's messaging protocol over its websocket):
    (what it printed, the error's traceback or None)."""
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    request = HTTPRequest(client.ws_url(kernel_path + "/channels"), headers=client.auth_header)
    connection = await asyncio.wait_for(websocket_connect(request), client.request_timeout)
    msg_id = uuid.uuid4().hex
    message = {
        "header": {
            "msg_id": msg_id,
            "msg_type": "execute_request",
            "username": "occam-check",
            "session": uuid.uuid4().hex,
            "version": "5.3",
            "date": "",
        },
        "parent_header": {},
        "metadata": {},
        "content": {"code": code, "silent": False, "store_history": False, "allow_stdin": False},
        "channel": "shell",
        "buffers": [],
    }
    output: list[str] = []
    error: str | None = None
    try:
        await connection.write_message(json.dumps(message))
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"waited {timeout:g} s for the check's code to finish in the kernel")
            raw = await asyncio.wait_for(connection.read_message(), left)
            if raw is None:
                raise HubError("the kernel's websocket closed before the code finished", None)
            reply = json.loads(raw)
            if (reply.get("parent_header") or {}).get("msg_id") != msg_id:
                continue
            kind, content = reply["header"]["msg_type"], reply.get("content") or {}
            if kind == "stream":
                output.append(content.get("text", ""))
            elif kind == "error":
                error = "\n".join(content.get("traceback") or [f"{content.get('ename')}: {content.get('evalue')}"])
            elif kind == "status" and content.get("execution_state") == "idle":
                return "".join(output), error
    finally:
        connection.close()


def run_check(
    client: HubClient,
    *,
    code: str = DEFAULT_CODE,
    user: str | None = None,
    spawn_timeout: float = 600,
    code_timeout: float = 900,
    stop_timeout: float = 300,
    log: Callable[[str], None] = print,
) -> list[CheckStep]:
    """Spawn a throw-away user, run ``code`` in their server, remove them; the steps, in order.

    A step that fails ends the check (the later steps are not tried) but for the clean-up, which always
    runs: the server is stopped and the user deleted (the student namespace stays, as for every user:
    ``kubectl delete namespace`` it, or keep it for the next check).
    """
    name = user or f"occam-check-{secrets.token_hex(3)}"
    steps: list[CheckStep] = []
    quoted = urllib.parse.quote(name)

    def step(title: str, action: Callable[[], str]) -> bool:
        log(f"... {title}")
        began = time.monotonic()
        try:
            detail = action()
        except (HubError, TimeoutError, ConfigError, OSError) as exc:
            steps.append(CheckStep(title, False, time.monotonic() - began, str(exc)))
            return False
        steps.append(CheckStep(title, True, time.monotonic() - began, detail))
        return True

    def create() -> str:
        client.request("POST", f"/hub/api/users/{quoted}")
        return f"user {name}"

    def spawn() -> str:
        client.request("POST", f"/hub/api/users/{quoted}/server", {})

        def ready() -> str | None:
            server = _server(client.user(name))
            if not server:
                # JupyterHub drops a server whose spawn failed; its reason is in the hub's log.
                raise HubError(
                    f"the server of {name} failed to start: read the hub's log (kubectl -n <release namespace> "
                    "logs deploy/hub) for the spawner's reason",
                    None,
                )
            if server.get("ready"):
                return str(server.get("url") or "")
            return None

        url = wait_for(f"the server of {name} to be ready", ready, spawn_timeout)
        return f"ready at {url}"

    def execute() -> str:
        prefix = _server(client.user(name)).get("url") or f"/user/{quoted}/"
        kernel = client.request("POST", f"{prefix.rstrip('/')}/api/kernels", {})
        kernel_path = f"{prefix.rstrip('/')}/api/kernels/{kernel['id']}"
        try:
            output, error = asyncio.run(_execute(client, kernel_path, code, code_timeout))
        finally:
            # The server may already be going; stopping it ends the kernel anyway.
            with contextlib.suppress(HubError):
                client.request("DELETE", kernel_path)
        if error is not None:
            raise HubError(f"the check's code failed:\n{output}{error}", None)
        if OK_MARKER not in output:
            raise HubError(f"the check's code ended without printing {OK_MARKER}:\n{output}", None)
        return output.strip()

    def stop() -> str:
        try:
            client.request("DELETE", f"/hub/api/users/{quoted}/server")
        except HubError as exc:
            if exc.status not in (400, 404):
                raise
        wait_for(f"the server of {name} to stop", lambda: not _server(client.user(name)), stop_timeout)
        client.request("DELETE", f"/hub/api/users/{quoted}")
        return f"user {name} removed"

    try:
        if step("create a test user", create) and step("start its server", spawn):
            step("run the check's code in a kernel", execute)
    finally:
        if steps and steps[0].ok:
            step("stop the server and remove the user", stop)
    return steps


def report(steps: list[CheckStep]) -> str:
    """The steps as lines: ``ok``/``FAILED``, seconds, name, and what each saw."""
    lines = []
    for s in steps:
        lines.append(f"{'ok' if s.ok else 'FAILED':6} {s.seconds:7.1f} s  {s.name}")
        lines += [f"{'':17}{line}" for line in s.detail.splitlines()[-20:]]
    verdict = "the install works" if steps and all(s.ok for s in steps) else "the install does NOT work (see above)"
    return "\n".join(lines) + f"\n{verdict}\n"


__all__ = ["DEFAULT_CODE", "OK_MARKER", "CheckStep", "HubClient", "HubError", "report", "run_check", "wait_for"]
