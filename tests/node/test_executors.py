"""start_cluster(backend="kubernetes") end to end on the real node: executor pods run the notebook image
(images/notebook/Dockerfile, built by podman), register with a driver on this machine, train, and survive (or
report) the loss of a pod.

The driver is a separate process standing in for the notebook kernel (tests/node/node_driver.py, started by
:mod:`.driverproc`), with the student's token; Spark creates the executor pods through the API server and
the kubelet runs them in containers. The notebook pod itself (``notebook`` fixture) runs the pause image on
the real node, so executors are owned by a pod that really exists. The one stand-in: the driver runs on
this machine rather than inside that pod (with this venv at the image's venv path, so that the executors'
Python is the image's own), and reaches the pods over the node's bridge. The whole path inside the image,
notebook included, is tests/node/test_hub_on_node.py.
"""

from __future__ import annotations

import ipaddress
import os
import time
from pathlib import Path

import pytest

from tests.kubernetes.student import wait_until

from .driverproc import NodeDriver
from .realnode import SUBNET

SELECTOR = "app.kubernetes.io/name=occam,app.kubernetes.io/component=executor"


def executor_pods(admin, namespace, cluster):
    return admin.list_namespaced_pod(namespace, label_selector=f"{SELECTOR},occam.io/cluster={cluster}").items


@pytest.fixture
def driver(on_real_node, namespace, notebook, tmp_path):
    drivers = []

    def start(**options):
        started = NodeDriver(on_real_node, namespace, notebook, tmp_path, **options)
        drivers.append(started)
        return started

    yield start
    for started in drivers:
        started.close()


def start_two(driver, admin, namespace):
    proc = driver(n=2, timeout=300)
    ready, _ = proc.read_until("executors", 330)
    assert "error" not in ready, ready
    assert ready["executors"] == 2
    return proc


def test_two_executors_register_from_pods_train_digits_and_leave_no_pod(on_real_node, admin, namespace, driver):
    proc = start_two(driver, admin, namespace)
    pods = executor_pods(admin, namespace.name, proc.name)
    assert len(pods) == 2
    for pod in pods:
        assert pod.spec.node_name == on_real_node.name
        assert pod.status.phase == "Running"
        assert ipaddress.ip_address(pod.status.pod_ip) in ipaddress.ip_network(SUBNET)
        assert pod.spec.containers[0].image == on_real_node.images["notebook"].ref

    proc.send("fit 5")
    result, epochs = proc.read_until("accuracy", 600)
    assert "error" not in result, result["message"]
    assert [e["epoch"] for e in epochs if "epoch" in e] == [1, 2, 3, 4, 5]
    assert result["ranks"] == 2
    assert result["accuracy"] >= 0.9  # the embedded cluster's bar (tests/local/test_fit.py)

    proc.send("stop")
    assert proc.read_until("stopped", 120)[0]["stopped"]
    wait_until(
        "the executor pods and the cluster's Secret to be deleted",
        lambda: not admin.list_namespaced_pod(namespace.name, label_selector=f"occam.io/cluster={proc.name}").items
        and not admin.list_namespaced_secret(namespace.name, label_selector=f"occam.io/cluster={proc.name}").items,
        timeout=120,
    )


def test_a_killed_executor_pod_during_a_spark_job_only_costs_a_retry(on_real_node, admin, namespace, driver):
    proc = start_two(driver, admin, namespace)
    proc.send("job 4 15")
    assert proc.read_until("job_started", 60)[0]["job_started"]
    victim = executor_pods(admin, namespace.name, proc.name)[0].metadata.name
    time.sleep(3)  # the four 15 s tasks are running by now, two on each executor slot in turn
    admin.delete_namespaced_pod(victim, namespace.name, grace_period_seconds=0)

    result, _ = proc.read_until("job", 300)
    assert "error" not in result, result
    tasks = result["job"]
    assert [t[0] for t in tasks] == [0, 1, 2, 3]  # every task's result arrived
    assert any(attempt > 0 for _, attempt in tasks), f"no task was retried: {tasks}"
    # Spark asks Kubernetes for a replacement, which registers in place of the lost executor.
    wait_until(
        "a replacement executor pod to register",
        lambda: (proc.send("executors") or proc.read(30))["executors"] == 2
        and victim not in {p.metadata.name for p in executor_pods(admin, namespace.name, proc.name)},
        timeout=240,
        interval=3,
    )


def test_a_killed_executor_pod_during_training_ends_fit_with_the_checkpoint_to_resume(
    on_real_node, admin, namespace, driver
):
    proc = start_two(driver, admin, namespace)
    proc.send("fit 30")
    first, _ = proc.read_until("epoch", 600)
    assert "error" not in first, first["message"]
    victim = executor_pods(admin, namespace.name, proc.name)[1].metadata.name
    admin.delete_namespaced_pod(victim, namespace.name, grace_period_seconds=0)

    result, _ = proc.read_until("accuracy", 600)
    assert result.get("error") == "TrainingError", result
    message = result["message"]
    assert message.startswith("executor ") and "was lost during training" in message.splitlines()[0], message
    assert "resume=True" in message, message
    checkpoint = message.split("The last checkpoint is ", 1)[1].split(":", 1)[0]
    assert Path(checkpoint).parent == proc.shared / "checkpoints" / "build_cnn"
    assert any(name.startswith(os.path.basename(checkpoint)) for name in os.listdir(Path(checkpoint).parent))
