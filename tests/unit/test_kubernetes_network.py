"""Which interface a Horovod rank uses to reach the driver (``occam.kubernetes.network``, asked through the
backend of the session)."""

from __future__ import annotations

from occam.backends.embedded import EmbeddedBackend
from occam.backends.kubernetes import KubernetesBackend
from occam.kubernetes.network import lone_rank_interfaces
from occam.training.network import local_interfaces

POD = {"lo": ["127.0.0.1"], "eth0": ["10.244.1.7"]}


def test_a_lone_rank_on_kubernetes_uses_the_interface_of_the_drivers_pod_address_never_loopback():
    # A notebook driver: bindAddress 0.0.0.0, host = the pod IP. A batch driver: bindAddress = the pod IP,
    # host = its Service's name.
    assert lone_rank_interfaces(1, ["0.0.0.0", "10.244.1.7"], POD) == {"eth0"}
    assert lone_rank_interfaces(1, ["10.244.1.7", "job-driver-svc.ns.svc"], POD) == {"eth0"}
    assert lone_rank_interfaces(1, ["127.0.0.1"], POD) is None


def test_horovod_finds_the_interfaces_itself_with_several_ranks_or_an_address_not_here():
    assert lone_rank_interfaces(2, ["10.244.1.7"], POD) is None  # task-to-task checks rule loopback out
    assert lone_rank_interfaces(1, ["192.0.2.9"], POD) is None  # not an address of this pod


def test_the_backends_answer_for_their_own_sessions():
    assert KubernetesBackend.rank_interfaces({}, 1, ["0.0.0.0", "10.244.1.7"], POD) == {"eth0"}
    # The embedded cluster's executors run on the driver's machine: Horovod's own discovery works.
    assert EmbeddedBackend.rank_interfaces({}, 1, ["10.244.1.7"], POD) is None


def test_local_interfaces_lists_loopback_with_its_address():
    assert "127.0.0.1" in local_interfaces()["lo"]
