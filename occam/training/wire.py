"""Frames and the HMAC handshake of the event channel (see :mod:`occam.training.events`).

A frame is a 4-byte big-endian length and that many bytes. The handshake proves to each side that
the other holds the fit's random key, without sending it: each side sends a random nonce and answers
the other's with ``HMAC-SHA256(key, role + both nonces)``. The role names differ, so an answer cannot
be reflected back at its sender.
"""

from __future__ import annotations

import hmac
import secrets
import socket
import struct
import time

HEADER = struct.Struct(">I")
NONCE_BYTES = 32
DIGEST = "sha256"
RANK_ROLE = b"occam-events rank"
DRIVER_ROLE = b"occam-events driver"


class FrameTooLarge(OSError):
    """A peer announced a frame over the limit; its bytes are not read and the connection is dropped."""


class HandshakeFailed(OSError):
    """The peer does not know the key, or answered with something that is not an answer."""


def send_frame(sock: socket.socket, payload: bytes) -> None:
    sock.sendall(HEADER.pack(len(payload)) + payload)


def recv_frame(sock: socket.socket, max_bytes: int, deadline: float | None = None) -> bytes:
    """The next frame's payload. Raises :class:`FrameTooLarge` before reading a payload over
    ``max_bytes``, :class:`EOFError` when the peer closed, and ``TimeoutError`` past ``deadline``
    (a ``time.monotonic()`` value; ``None`` waits as long as the socket's own timeout)."""
    (size,) = HEADER.unpack(_recv_exactly(sock, HEADER.size, deadline))
    if size > max_bytes:
        raise FrameTooLarge(f"a {size}-byte frame is over the {max_bytes}-byte limit")
    return _recv_exactly(sock, size, deadline)


def _recv_exactly(sock: socket.socket, size: int, deadline: float | None) -> bytes:
    chunks, remaining = [], size
    while remaining:
        if deadline is not None:
            # The deadline covers the whole read: a peer trickling a byte at a time cannot stretch it.
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the peer stayed silent past the deadline")
            sock.settimeout(left)
        chunk = sock.recv(min(remaining, 1 << 16))
        if not chunk:
            raise EOFError("the peer closed the connection")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _answer(key: bytes, role: bytes, first: bytes, second: bytes) -> bytes:
    return hmac.new(key, role + first + second, DIGEST).digest()


def driver_handshake(sock: socket.socket, key: bytes, timeout: float) -> None:
    """The driver's side: challenge the rank, check its answer, answer its challenge; all within ``timeout``."""
    deadline = time.monotonic() + timeout
    mine = secrets.token_bytes(NONCE_BYTES)
    sock.settimeout(timeout)
    send_frame(sock, mine)
    reply = recv_frame(sock, 2 * NONCE_BYTES + 64, deadline)
    theirs, answer = reply[:NONCE_BYTES], reply[NONCE_BYTES:]
    if len(theirs) != NONCE_BYTES or not hmac.compare_digest(answer, _answer(key, RANK_ROLE, mine, theirs)):
        raise HandshakeFailed("the rank did not answer with the fit's key")
    send_frame(sock, _answer(key, DRIVER_ROLE, theirs, mine))


def rank_handshake(sock: socket.socket, key: bytes, timeout: float) -> None:
    """A rank's side: answer the driver's challenge with a challenge of its own, check the driver's answer."""
    deadline = time.monotonic() + timeout
    sock.settimeout(timeout)
    challenge = recv_frame(sock, NONCE_BYTES, deadline)
    if len(challenge) != NONCE_BYTES:
        raise HandshakeFailed("the driver's challenge is not a nonce")
    mine = secrets.token_bytes(NONCE_BYTES)
    send_frame(sock, mine + _answer(key, RANK_ROLE, challenge, mine))
    answer = recv_frame(sock, 64, deadline)
    if not hmac.compare_digest(answer, _answer(key, DRIVER_ROLE, mine, challenge)):
        raise HandshakeFailed("the listener did not answer with the fit's key")
