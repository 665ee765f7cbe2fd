"""A kernel in a student's notebook server, driven through the hub's proxy (the Jupyter REST and kernel websocket
APIs, with a token the hub accepts): what the node tier's hub tests run their code with."""

from __future__ import annotations

import asyncio
import datetime
import json
import uuid
from typing import Any, Protocol


def _message(code: str, session: str) -> dict[str, Any]:
    return {
        "header": {
            "msg_id": uuid.uuid4().hex,
            "username": "occam-test",
            "session": session,
            "msg_type": "execute_request",
            "version": "5.3",
            "date": datetime.datetime.now(datetime.UTC).isoformat(),
        },
        "parent_header": {},
        "metadata": {},
        "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {}},
        "channel": "shell",
        "buffers": [],
    }


class HubClient(Protocol):
    """What :class:`Kernel` needs of the hub: its public URL (the proxy's), a token, and requests with it."""

    url: str
    token: str

    def request(self, method: str, url: str, body: Any = None) -> tuple[int, bytes]: ...


class Kernel:
    """A kernel in the student's notebook server, reached through the hub's proxy over the kernel websocket."""

    def __init__(self, hub: HubClient, user: str) -> None:
        self.hub, self.user = hub, user
        self.base = f"/user/{user}/api/kernels"
        status, body = hub.request("POST", f"{hub.url}{self.base}", {"name": "python3"})
        assert status == 201, body[:300]
        self.id = json.loads(body)["id"]
        self.session = uuid.uuid4().hex

    def run(self, code: str, timeout: float) -> str:
        """Run ``code``; its printed output (and an error's traceback, if it failed)."""
        return asyncio.run(self._run(code, timeout))

    async def _run(self, code: str, timeout: float) -> str:
        from tornado.httpclient import HTTPRequest
        from tornado.websocket import websocket_connect

        url = f"ws{self.hub.url.removeprefix('http')}{self.base}/{self.id}/channels?session_id={self.session}"
        request = HTTPRequest(url, headers={"Authorization": f"token {self.hub.token}"}, connect_timeout=30)
        connection = await websocket_connect(request)
        message = _message(code, self.session)
        await connection.write_message(json.dumps(message))
        output: list[str] = []
        try:
            async with asyncio.timeout(timeout):
                while True:
                    raw = await connection.read_message()
                    if raw is None:
                        raise RuntimeError(f"the kernel's websocket closed; output so far:\n{''.join(output)}")
                    reply = json.loads(raw)
                    if reply.get("parent_header", {}).get("msg_id") != message["header"]["msg_id"]:
                        continue
                    kind, content = reply["msg_type"], reply["content"]
                    if kind == "stream":
                        output.append(content["text"])
                    elif kind == "error":
                        output.append("\n".join(content["traceback"]))
                    elif kind == "status" and content["execution_state"] == "idle":
                        return "".join(output)
        except TimeoutError:
            raise TimeoutError(f"the kernel ran for {timeout:.0f} s; output so far:\n{''.join(output)}") from None
        finally:
            connection.close()
