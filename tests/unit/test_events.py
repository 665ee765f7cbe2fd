"""The event channel: authenticated ranks' messages arrive in order; silence, wrong keys, oversize frames
and unknown messages are refused without holding the driver up; a rank's sending never raises."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time

import pytest

from occam.training.events import EventAddress, EventClient, EventServer
from occam.training.messages import EpochEnded, RankFailed, RankStarted
from occam.training.wire import HEADER, HandshakeFailed, driver_handshake, rank_handshake, recv_frame, send_frame


def epoch(n: int) -> EpochEnded:
    return EpochEnded(epoch=n, epochs=3, metrics={"loss": 1.0 / n}, seconds=0.5)


def authenticated(server: EventServer) -> socket.socket:
    """A raw connection that passed the handshake, to send the driver what a client would not."""
    sock = socket.create_connection((server.address.host, server.address.port), timeout=5)
    rank_handshake(sock, server.address.authkey, timeout=5)
    return sock


def closed_by_peer(sock: socket.socket, within: float) -> bool:
    """Whether the other end closes ``sock`` within ``within`` seconds (whatever it sends before)."""
    sock.settimeout(within)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


def test_messages_reach_the_driver_in_order_as_dataclasses():
    with EventServer() as server:
        client = EventClient(server.address)
        assert client.connected
        client.send(RankStarted(size=2, initial_epoch=0, steps=10))
        for n in range(1, 4):
            client.send(epoch(n))
        client.close()
        received = [server.events.get(timeout=10) for _ in range(4)]
    assert received == [RankStarted(size=2, initial_epoch=0, steps=10), epoch(1), epoch(2), epoch(3)]


def test_a_client_with_the_wrong_key_is_refused_and_the_server_keeps_serving(caplog):
    with EventServer() as server:
        address = server.address
        sock = socket.create_connection((address.host, address.port), timeout=5)
        with pytest.raises((HandshakeFailed, EOFError, ConnectionResetError)):
            rank_handshake(sock, b"wrong key", timeout=5)
        sock.close()
        impostor = EventClient(EventAddress(address.host, address.port, b"another fit's key"))
        assert not impostor.connected
        impostor.send(epoch(99))  # a no-op, not an error
        good = EventClient(address)
        good.send(epoch(1))
        assert server.events.get(timeout=10) == epoch(1)
        assert server.events.empty()
    assert "refused an event connection" in caplog.text


def test_a_silent_connection_is_closed_after_the_handshake_timeout():
    with EventServer(handshake_timeout=0.5) as server:
        silent = socket.create_connection((server.address.host, server.address.port), timeout=5)
        started = time.monotonic()
        assert closed_by_peer(silent, within=5)
        assert 0.4 < time.monotonic() - started < 3
        # meanwhile and afterwards, ranks are served
        client = EventClient(server.address)
        client.send(epoch(1))
        assert server.events.get(timeout=10) == epoch(1)


def test_a_connection_that_trickles_its_handshake_is_closed_at_the_deadline_too():
    with EventServer(handshake_timeout=1.0) as server:
        slow = socket.create_connection((server.address.host, server.address.port), timeout=5)
        recv_frame(slow, 64)  # the challenge
        started = time.monotonic()
        with pytest.raises(OSError):
            for byte in HEADER.pack(96) + bytes(96):
                slow.sendall(bytes([byte]))
                time.sleep(0.3)
        assert time.monotonic() - started < 3


def test_an_oversize_frame_closes_its_connection_unread(caplog):
    with EventServer(max_message_bytes=1024) as server:
        sock = authenticated(server)
        sock.sendall(HEADER.pack(10 << 20))  # announces 10 MiB; the driver must not wait for or keep them
        assert closed_by_peer(sock, within=5)
        other = EventClient(server.address)
        other.send(epoch(2))
        assert server.events.get(timeout=10) == epoch(2)
        assert server.events.empty()
    assert "over the 1024-byte limit" in caplog.text


def test_unknown_messages_are_dropped_and_the_connection_goes_on(caplog):
    with EventServer() as server:
        sock = authenticated(server)
        send_frame(sock, json.dumps({"kind": "shell", "command": "rm -rf /"}).encode())
        send_frame(sock, b"\x80\x04\x95 a pickle")
        send_frame(sock, json.dumps({"kind": "epoch_ended", "epoch": 1}).encode())
        good = json.dumps({"kind": "epoch_ended", "epoch": 1, "epochs": 3, "metrics": {"loss": 1.0}, "seconds": 0.5})
        send_frame(sock, good.encode())
        assert server.events.get(timeout=10) == epoch(1)
        assert server.events.empty()
        sock.close()
    assert "unknown message kind 'shell'" in caplog.text and "not a JSON message" in caplog.text


def test_a_client_drops_a_message_over_the_limit_instead_of_losing_the_channel():
    with EventServer() as server:
        client = EventClient(server.address, max_message_bytes=200)
        client.send(RankFailed(rank=0, error="x" * 500, traceback=""))
        client.send(epoch(1))
        assert server.events.get(timeout=10) == epoch(1)
        assert client.connected


def test_a_rank_without_a_driver_still_trains(caplog):
    with socket.create_server(("127.0.0.1", 0)) as unused:
        port = unused.getsockname()[1]
    with caplog.at_level(logging.WARNING):
        client = EventClient(EventAddress(host="127.0.0.1", port=port, authkey=b"k"))
    client.send(epoch(1))  # must not raise
    client.close()
    assert "no progress channel to the driver" in caplog.text


def test_a_rank_whose_driver_went_away_still_trains():
    server = EventServer()
    client = EventClient(server.address)
    server.close()
    for n in range(1, 50):  # the first sends may still fit in the socket's buffers; later ones fail
        client.send(epoch(n))
    assert not client.connected


def test_a_driver_that_stopped_reading_does_not_stall_a_rank():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        host, port = listener.getsockname()[:2]
        key = b"k" * 32

        def accept_and_never_read() -> socket.socket:
            conn, _ = listener.accept()
            driver_handshake(conn, key, timeout=5)
            return conn

        accepted: list[socket.socket] = []
        thread = threading.Thread(target=lambda: accepted.append(accept_and_never_read()))
        thread.start()
        client = EventClient(EventAddress(host, port, key), timeout=0.5)
        thread.join(10)
        assert client.connected
        started = time.monotonic()
        big = RankFailed(rank=0, error="", traceback="x" * 500_000)
        while client.connected and time.monotonic() - started < 30:
            client.send(big)  # fills the socket buffers, then times out and gives up
        assert not client.connected
        assert time.monotonic() - started < 10
        accepted[0].close()


def test_drain_waits_for_the_ranks_to_hang_up_and_close_ends_the_rest():
    with EventServer() as server:
        finished, lingering = EventClient(server.address), authenticated(server)
        finished.send(epoch(1))
        finished.close()
        started = time.monotonic()
        server.drain(0.5)  # the lingering connection keeps it waiting the whole timeout
        assert 0.4 < time.monotonic() - started < 2
        assert server.events.get(timeout=1) == epoch(1)
        lingering.close()
        started = time.monotonic()
        server.drain(5)
        assert time.monotonic() - started < 2
        still_open = authenticated(server)
    assert closed_by_peer(still_open, within=5)
