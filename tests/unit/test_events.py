from multiprocessing.connection import Client

import pytest

from occam.training.events import EventAddress, EventClient, EventServer


def test_events_reach_the_driver_in_order():
    with EventServer() as server:
        client = EventClient(server.address)
        for epoch in range(1, 4):
            client.send({"type": "epoch", "epoch": epoch})
        client.close()
        received = [server.events.get(timeout=10)["epoch"] for _ in range(3)]
    assert received == [1, 2, 3]


def test_a_client_without_the_key_is_refused_and_the_server_keeps_serving():
    with EventServer() as server:
        host, port = server.address.host, server.address.port
        with pytest.raises(Exception):  # noqa: B017 - AuthenticationError or a reset, depending on timing
            Client((host, port), authkey=b"wrong key").send({"type": "epoch", "epoch": 99})
        good = EventClient(server.address)
        good.send({"type": "epoch", "epoch": 1})
        assert server.events.get(timeout=10) == {"type": "epoch", "epoch": 1}
        assert server.events.empty()


def test_a_rank_without_a_driver_still_trains():
    client = EventClient(EventAddress(host="127.0.0.1", port=1, authkey=b"k"))
    client.send({"type": "epoch"})  # must not raise
    client.close()
