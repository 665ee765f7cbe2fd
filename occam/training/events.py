"""The channel that carries progress from Horovod ranks back to the notebook while ``fit`` runs.

The driver listens on its own address with a random key per fit; ranks connect, prove they hold the
key (:mod:`occam.training.wire`'s HMAC handshake) and send :mod:`occam.training.messages` as JSON
frames. What the driver accepts is bounded: a connection must finish the handshake within
``HANDSHAKE_SECONDS`` or is closed, a frame over ``MAX_MESSAGE_BYTES`` closes its connection unread,
and bytes that are not a known message are dropped. So no other process can inject, read or stall
the events, and a confused one cannot make the driver allocate or wait without bound.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import secrets
import socket
import threading
import time
from dataclasses import dataclass

from occam.training.messages import Message, MessageError, decode, encode
from occam.training.wire import FrameTooLarge, HandshakeFailed, driver_handshake, rank_handshake, recv_frame, send_frame

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 1 << 20
HANDSHAKE_SECONDS = 5.0
# A rank gives up connecting, or sending one message, after this long: progress is not worth a
# stalled training step.
RANK_SOCKET_SECONDS = 10.0
# How often the accepting thread looks whether the server was closed.
ACCEPT_POLL_SECONDS = 0.5


@dataclass(frozen=True)
class EventAddress:
    host: str
    port: int
    authkey: bytes


class EventServer:
    """Collects the ranks' messages into ``events``, a queue; use as a context manager."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        *,
        handshake_timeout: float = HANDSHAKE_SECONDS,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
    ) -> None:
        self.handshake_timeout = handshake_timeout
        self.max_message_bytes = max_message_bytes
        self.events: queue.Queue[Message] = queue.Queue()
        self._authkey = secrets.token_bytes(32)
        self._listener = socket.create_server((host, 0))
        self._listener.settimeout(ACCEPT_POLL_SECONDS)
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        threading.Thread(target=self._accept, name="occam-events", daemon=True).start()

    @property
    def address(self) -> EventAddress:
        host, port = self._listener.getsockname()[:2]
        return EventAddress(host=host, port=port, authkey=self._authkey)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._closed.is_set():
                    return
                continue
            with self._lock:
                if self._closed.is_set():
                    conn.close()
                    return
                self._connections.add(conn)
            # The handshake runs in each connection's own thread, so a client that connects and stays
            # silent holds up nobody else, and only until the handshake timeout.
            threading.Thread(target=self._serve, args=(conn,), name="occam-events-rank", daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            driver_handshake(conn, self._authkey, self.handshake_timeout)
            # An authenticated rank may stay quiet for long (loading data, validating): no timeout now.
            conn.settimeout(None)
            while True:
                payload = recv_frame(conn, self.max_message_bytes)
                try:
                    self.events.put(decode(payload))
                except MessageError as exc:
                    log.warning("dropped a message from a training rank: %s", exc)
        except FrameTooLarge as exc:
            log.warning("closed a training rank's event connection: %s", exc)
        except HandshakeFailed as exc:
            log.warning("refused an event connection: %s", exc)
        except (OSError, EOFError):
            pass  # the rank finished, the handshake timed out, or the server was closed
        finally:
            with self._lock:
                self._connections.discard(conn)
            conn.close()

    def drain(self, timeout: float) -> None:
        """Wait (at most ``timeout`` seconds) until every rank has closed its connection and all it sent
        is in ``events``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._connections:
                    return
            time.sleep(0.05)

    def close(self) -> None:
        """Stop accepting and end every connection (their threads then return)."""
        with self._lock:
            self._closed.set()
            connections = list(self._connections)
        self._listener.close()
        for conn in connections:
            # shutdown, not only close: it wakes the thread blocked reading this socket.
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> EventServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventClient:
    """A rank's end of the channel. Sending never raises and never waits long: losing progress must not
    fail or stall training, so any trouble (no driver, wrong key, a slow reader) drops the connection."""

    def __init__(
        self,
        address: EventAddress,
        *,
        timeout: float = RANK_SOCKET_SECONDS,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
    ) -> None:
        self.max_message_bytes = max_message_bytes
        self._sock: socket.socket | None = None
        try:
            sock = socket.create_connection((address.host, address.port), timeout=timeout)
        except OSError as exc:
            log.warning("no progress channel to the driver at %s:%s: %s", address.host, address.port, exc)
            return
        try:
            rank_handshake(sock, address.authkey, timeout)
            sock.settimeout(timeout)
        except (OSError, EOFError) as exc:
            log.warning("the driver's progress channel refused this rank: %s", exc)
            sock.close()
            return
        self._sock = sock

    @property
    def connected(self) -> bool:
        return self._sock is not None

    def send(self, message: Message) -> None:
        if self._sock is None:
            return
        try:
            payload = encode(message)
        except Exception as exc:
            log.warning("could not encode %s for the driver: %s", type(message).__name__, exc)
            return
        if len(payload) > self.max_message_bytes:
            log.warning("dropped a %d-byte %s: over the channel's limit", len(payload), type(message).__name__)
            return
        try:
            send_frame(self._sock, payload)
        except OSError as exc:
            log.warning("lost the progress channel to the driver: %s", exc)
            self.close()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
