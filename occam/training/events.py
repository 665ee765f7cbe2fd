"""The channel that carries progress from Horovod ranks back to the notebook while ``fit`` runs.

The driver listens on its own address with a random key; ranks connect and send small dicts
(epoch metrics, a failing rank's traceback). Authenticated by ``multiprocessing.connection``'s
HMAC handshake, so no other process can inject or read events.
"""

from __future__ import annotations

import queue
import secrets
import threading
from dataclasses import dataclass
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Connection, Listener, answer_challenge, deliver_challenge
from typing import Any, cast


@dataclass(frozen=True)
class EventAddress:
    host: str
    port: int
    authkey: bytes


class EventServer:
    """Collects events from ranks into a queue; use as a context manager."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._authkey = secrets.token_bytes(32)
        # The handshake runs in each connection's own thread (not in accept), so a client that
        # connects and stays silent cannot hold up the others.
        self._listener = Listener((host, 0))
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._closed = threading.Event()
        self._connections: list[Connection] = []
        self._thread = threading.Thread(target=self._accept, name="occam-events", daemon=True)
        self._thread.start()

    @property
    def address(self) -> EventAddress:
        host, port = cast(tuple[str, int], self._listener.address)
        return EventAddress(host=host, port=port, authkey=self._authkey)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn = self._listener.accept()
            except OSError:
                if self._closed.is_set():
                    return
                continue
            self._connections.append(conn)
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: Connection) -> None:
        try:
            deliver_challenge(conn, self._authkey)
            answer_challenge(conn, self._authkey)
        except (AuthenticationError, EOFError, OSError):
            conn.close()
            return
        while True:
            try:
                self.events.put(conn.recv())
            except (EOFError, OSError):
                return

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        for conn in self._connections:
            conn.close()

    def __enter__(self) -> EventServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventClient:
    """A rank's end of the channel. Sending never raises: losing progress must not fail training."""

    def __init__(self, address: EventAddress) -> None:
        self._conn: Connection | None
        try:
            self._conn = Client((address.host, address.port), authkey=address.authkey)
        except OSError:
            self._conn = None

    def send(self, event: dict[str, Any]) -> None:
        if self._conn is None:
            return
        try:
            self._conn.send(event)
        except OSError:
            self._conn = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
