"""How ``occam submit`` follows a Kubernetes driver pod: wait for it to start, print its log, return its exit code.

A stub stands in for the namespace API here, because no container ever runs on the test control plane's
kwok nodes: a driver pod there has no log and never ends (tests/kubernetes/test_submit.py covers the
real API server up to the driver pod's creation).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from occam.backends import kubernetes_jobs as batch_k8s
from occam.errors import ClusterStartError


def pod(phase: str, **state: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "job-driver"},
        "status": {"phase": phase, "containerStatuses": [{"name": "driver", "state": state}] if state else []},
    }


class StubApi:
    def __init__(self, pods: list[dict[str, Any] | None], log: list[str]) -> None:
        self.pods, self.log, self.deleted = pods, log, []

    def read_pod(self, name: str) -> dict[str, Any] | None:
        return self.pods.pop(0) if len(self.pods) > 1 else self.pods[0]

    def follow_log(self, name: str, container: str) -> Iterator[str]:
        assert container == "driver"
        yield from self.log

    def delete_pod(self, name: str) -> None:
        self.deleted.append(name)


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch):
    monkeypatch.setattr(batch_k8s, "POLL_SECONDS", 0.01)


def test_prints_the_drivers_log_and_returns_its_exit_code(capsys):
    api = StubApi(
        [pod("Pending"), pod("Running", running={}), pod("Failed", terminated={"exitCode": 3})],
        ["epoch 1: loss=0.5", "Traceback (most recent call last):", "ValueError: bad"],
    )
    assert batch_k8s.follow(api, "job-driver", timeout=5) == 3  # type: ignore[arg-type]
    assert capsys.readouterr().out.splitlines() == [
        "epoch 1: loss=0.5",
        "Traceback (most recent call last):",
        "ValueError: bad",
    ]


def test_a_driver_that_cannot_start_is_reported_and_deleted():
    waiting = {"waiting": {"reason": "ImagePullBackOff", "message": "no such image"}}
    api = StubApi([pod("Pending", **waiting)], [])
    with pytest.raises(ClusterStartError, match=r"driver pod job-driver: its image cannot be pulled"):
        batch_k8s.follow(api, "job-driver", timeout=5)  # type: ignore[arg-type]
    assert api.deleted == ["job-driver"]


def test_waiting_for_the_driver_is_bounded_and_says_what_it_waited_for():
    api = StubApi([pod("Pending")], [])
    with pytest.raises(ClusterStartError, match=r"did not start within 0 s: .*kubectl describe pod job-driver"):
        batch_k8s.follow(api, "job-driver", timeout=0.05)  # type: ignore[arg-type]


def test_a_log_that_cannot_be_read_is_reported_with_how_to_follow_the_job():
    from kubernetes.client.exceptions import ApiException

    class NoLogApi(StubApi):
        def follow_log(self, name: str, container: str) -> Iterator[str]:
            raise ApiException(status=500, reason="dial tcp 10.0.0.1:10250: connection refused")

    api = NoLogApi([pod("Running", running={})], [])
    with pytest.raises(
        ClusterStartError, match=r"cannot read the log .*connection refused.*kubectl logs -f job-driver"
    ):
        batch_k8s.follow(api, "job-driver", timeout=5)  # type: ignore[arg-type]
    assert api.deleted == []  # the job itself may be fine
