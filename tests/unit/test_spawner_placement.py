"""The node-fit check (spawner.placement): which pods no node could ever take, and what the message says."""

from __future__ import annotations

from typing import Any

import pytest

from spawner.placement import node_misfit, pod_requests, tolerates, unplaceable_reason
from tests.kubernetes.kwok_stages import DEFAULT_NODES, fake_node

GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def pod(
    *,
    cpu: str = "1",
    memory: str = "1G",
    gpus: int = 0,
    selector: dict[str, str] | None = None,
    tolerations: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    limits: dict[str, str] = {"cpu": cpu, "memory": memory}
    if gpus:
        limits["nvidia.com/gpu"] = str(gpus)
    spec: dict[str, Any] = {"containers": [{"name": "notebook", "resources": {"limits": limits, "requests": {}}}]}
    if selector:
        spec["nodeSelector"] = selector
    if tolerations:
        spec["tolerations"] = tolerations
    return {"spec": spec}


def test_requests_sum_containers_and_a_limit_stands_in_for_a_missing_request():
    two = {
        "spec": {
            "containers": [
                {"resources": {"requests": {"cpu": "500m"}, "limits": {"cpu": "1", "memory": "1Gi"}}},
                {"resources": {"requests": {"cpu": "250m", "nvidia.com/gpu": "1"}}},
            ]
        }
    }
    assert pod_requests(two) == {"cpu": 0.75, "memory": 1024**3, "nvidia.com/gpu": 1.0}


def test_a_cpu_notebook_fits_the_test_cluster():
    assert unplaceable_reason(pod(), DEFAULT_NODES) is None


def test_a_gpu_notebook_with_the_toleration_fits_a_gpu_node():
    gpu = pod(gpus=1, selector={"occam.io/gpu": "true"}, tolerations=[GPU_TOLERATION])
    assert unplaceable_reason(gpu, DEFAULT_NODES) is None


def test_a_label_no_node_has_is_named_in_the_message():
    message = unplaceable_reason(
        pod(gpus=1, selector={"gpu-model": "a100"}, tolerations=[GPU_TOLERATION]), DEFAULT_NODES
    )
    assert message is not None
    assert "no node in the cluster could ever run this server" in message
    assert "asks for 1 cpu, 0.931Gi memory, 1 nvidia.com/gpu on nodes labelled gpu-model=a100" in message
    assert "cpu-0, cpu-1, gpu-0, gpu-1: lacks the label(s) gpu-model=a100" in message
    assert "Choose another profile" in message


def test_a_gpu_pod_without_the_toleration_is_told_about_the_taint_and_the_missing_gpus():
    message = unplaceable_reason(pod(gpus=1), DEFAULT_NODES)
    assert message is not None
    assert "gpu-0, gpu-1: has the taint nvidia.com/gpu=present:NoSchedule the pod does not tolerate" in message
    assert "cpu-0, cpu-1: has 0 nvidia.com/gpu allocatable, the pod asks for 1" in message


def test_more_gpus_than_any_node_has_is_refused():
    message = unplaceable_reason(pod(gpus=4, tolerations=[GPU_TOLERATION]), DEFAULT_NODES)
    assert message is not None and "has 2 nvidia.com/gpu allocatable, the pod asks for 4" in message


def test_busy_nodes_are_not_a_reason_only_capacity_is():
    # Allocatable is the node's whole capacity for pods: what runs there now is not counted.
    assert unplaceable_reason(pod(cpu="4", memory="16Gi"), DEFAULT_NODES) is None
    assert unplaceable_reason(pod(cpu="9"), DEFAULT_NODES) is not None
    too_big = unplaceable_reason(pod(memory="40Gi"), DEFAULT_NODES) or ""
    assert "cpu-0, cpu-1: has 16Gi memory allocatable, the pod asks for 40Gi" in too_big


def test_cordoned_nodes_and_an_empty_cluster():
    cordoned = fake_node("n", cpu="4", memory="8Gi")
    cordoned["spec"]["unschedulable"] = True
    assert node_misfit(pod(), cordoned) == "is cordoned (unschedulable)"
    assert "the cluster has no nodes" in (unplaceable_reason(pod(), []) or "")


def test_required_node_affinity_is_checked():
    affine = pod()
    affine["spec"]["affinity"] = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]}]
            }
        }
    }
    node = fake_node("n", cpu="4", memory="8Gi", labels={"zone": "a"})
    assert node_misfit(affine, node) == "matches none of the pod's required node affinity terms"
    node["metadata"]["labels"]["zone"] = "b"
    assert node_misfit(affine, node) is None


@pytest.mark.parametrize(
    ("toleration", "expected"),
    [
        ({"key": "nvidia.com/gpu", "operator": "Exists"}, True),
        ({"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"}, True),
        ({"key": "nvidia.com/gpu", "value": "absent"}, False),
        ({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoExecute"}, False),
        ({"operator": "Exists"}, True),
        ({"key": "other", "operator": "Exists"}, False),
    ],
)
def test_tolerations_match_like_the_scheduler(toleration: dict[str, str], expected: bool):
    taint = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
    assert tolerates(taint, [toleration]) is expected
