"""A real JupyterHub process with OccamSpawner against the test control plane, driven through its REST API.

The hub runs with the least-privilege account of :mod:`spawner.hub_rbac` only. kwok's nodes run no
containers: the notebook pod is scheduled and reported Running by the control plane, and a real
``jupyterhub-singleuser`` on loopback, started with that pod's environment, stands in for its container
(:mod:`tests.hub.standin`), so the hub's own readiness check and proxy route are real. What is asserted
about the pod is its spec and status as the API server holds them, not a process inside it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from occam.kubernetes.objects import APP_LABEL, CLUSTER_LABEL, COMPONENT_LABEL, USER_LABEL
from spawner.namespace import (
    HUB_BINDING,
    LIMIT_RANGE,
    NETWORK_POLICY,
    NOTEBOOK_BINDING,
    NOTEBOOK_CLUSTER_ROLE,
    NOTEBOOK_LABELS,
    RESOURCE_QUOTA,
    SERVICE_ACCOUNT,
    namespace_name,
)
from tests.kubernetes.fixtures import Kube
from tests.kubernetes.student import StudentNamespace, wait_until

from .conftest import EXECUTOR_IMAGE, HUB_NAMESPACE, executor_pod, sa_token_client
from .hubprocess import HubProcess

EXECUTOR_LABELS = {APP_LABEL: "occam", COMPONENT_LABEL: "executor", CLUSTER_LABEL: "occam-ab12"}


def _pod(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    from kubernetes import client

    pod = client.CoreV1Api(kube.admin).read_namespaced_pod(name, namespace)
    return kube.admin.sanitize_for_serialization(pod)


def _notebook_pod_name(kube: Kube, namespace: str) -> str:
    from kubernetes import client

    pods = client.CoreV1Api(kube.admin).list_namespaced_pod(namespace, label_selector="component=singleuser-server")
    assert len(pods.items) == 1, [p.metadata.name for p in pods.items]
    return str(pods.items[0].metadata.name)


def _leave_a_cluster_behind(kube: Kube, ns: str, user: str) -> None:
    """Two executor pods and the cluster's Secret, as the Kubernetes backend labels them; one foreign Secret."""
    from kubernetes import client

    core = client.CoreV1Api(kube.admin)
    labels = {**EXECUTOR_LABELS, USER_LABEL: user}
    for i in (1, 2):
        core.create_namespaced_pod(ns, executor_pod(f"occam-ab12-exec-{i}", labels))
    core.create_namespaced_secret(ns, {"metadata": {"name": "occam-ab12", "labels": labels}})
    core.create_namespaced_secret(ns, {"metadata": {"name": "students-own"}})


def _assert_cluster_cleaned_up(kube: Kube, ns: str) -> None:
    from kubernetes import client

    core = client.CoreV1Api(kube.admin)

    def no_pods_left() -> bool:
        return not [p for p in core.list_namespaced_pod(ns).items if p.metadata.deletion_timestamp is None]

    wait_until(f"every pod in {ns} (notebook and executors) to be deleted", no_pods_left)
    secrets = {s.metadata.name for s in core.list_namespaced_secret(ns).items}
    assert "occam-ab12" not in secrets
    assert "students-own" in secrets, "only Occam's Secrets are deleted"


def test_a_spawn_through_the_hub_prepares_the_namespace_and_the_notebook_pod(
    kube: Kube, hub: HubProcess, student: str, namespace: StudentNamespace, tmp_path: Path
):
    from kubernetes import client

    hub.start_server(student)
    server = hub.wait_ready(student)
    ns = namespace_name(student)

    # The namespace objects, made by the hub's least-privilege account.
    core, rbac = client.CoreV1Api(kube.admin), client.RbacAuthorizationV1Api(kube.admin)
    assert core.read_namespaced_service_account(SERVICE_ACCOUNT, ns)
    binding = rbac.read_namespaced_role_binding(NOTEBOOK_BINDING, ns)
    assert (binding.role_ref.kind, binding.role_ref.name) == ("ClusterRole", NOTEBOOK_CLUSTER_ROLE)
    role = rbac.read_cluster_role(NOTEBOOK_CLUSTER_ROLE)
    assert {r for rule in role.rules for r in rule.resources} >= {"pods", "services", "configmaps", "secrets", "events"}
    assert [(s.kind, s.name, s.namespace) for s in binding.subjects] == [("ServiceAccount", SERVICE_ACCOUNT, ns)]
    hub_binding = rbac.read_namespaced_role_binding(HUB_BINDING, ns)  # the hub's own, made with its own account
    assert [(s.kind, s.name) for s in hub_binding.subjects] == [("User", "system:serviceaccount:occam-hub:hub")]
    quota = core.read_namespaced_resource_quota(RESOURCE_QUOTA, ns)
    assert quota.spec.hard["pods"] == "4" and quota.spec.hard["limits.cpu"] == "6"
    limits = core.read_namespaced_limit_range(LIMIT_RANGE, ns)
    assert limits.spec.limits[0].max["cpu"] == "2"
    policy = client.NetworkingV1Api(kube.admin).read_namespaced_network_policy(NETWORK_POLICY, ns)
    hub_peer = policy.spec.ingress[0]._from[0]
    assert hub_peer.namespace_selector.match_labels == {"kubernetes.io/metadata.name": HUB_NAMESPACE}

    # The notebook pod: Occam's labels, account, environment and the CPU profile's resources.
    pod = _pod(kube, ns, _notebook_pod_name(kube, ns))
    assert pod["status"]["phase"] == "Running"
    assert pod["metadata"]["labels"].items() >= NOTEBOOK_LABELS.items()
    assert pod["spec"]["serviceAccountName"] == SERVICE_ACCOUNT
    assert pod["spec"]["nodeName"].startswith("cpu-")
    container = pod["spec"]["containers"][0]
    assert container["resources"]["limits"]["cpu"] in ("1", "1.0")
    env = {e["name"]: e for e in container["env"]}
    assert env["OCCAM_K8S_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert env["OCCAM_K8S_POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    assert env["OCCAM_K8S_POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["OCCAM_K8S_EXECUTOR_IMAGE"]["value"] == EXECUTOR_IMAGE
    assert env["OCCAM_K8S_USER"]["value"] == student
    assert env["JUPYTERHUB_SERVICE_PREFIX"]["value"] == f"/user/{student}/"

    # The hub reached the server and routed it through its real proxy.
    assert server["url"] == f"/user/{student}/"
    status, body = hub.request("GET", f"{hub.url}/user/{student}/api/status")
    assert status == 200, body[:300]

    # RBAC with the notebook's own token: executors in the student's namespace, nothing in another's.
    student_api = client.CoreV1Api(sa_token_client(kube, ns, SERVICE_ACCOUNT, tmp_path))
    student_api.create_namespaced_pod(ns, executor_pod("occam-ab12-exec-1", {**EXECUTOR_LABELS, USER_LABEL: student}))
    student_api.create_namespaced_secret(ns, {"metadata": {"name": "occam-ab12", "labels": EXECUTOR_LABELS}})
    with pytest.raises(client.ApiException) as refused:
        student_api.create_namespaced_pod(namespace.name, executor_pod("intruder", EXECUTOR_LABELS))
    assert refused.value.status == 403
    with pytest.raises(client.ApiException) as refused:
        student_api.list_namespaced_pod(namespace.name)
    assert refused.value.status == 403
    core.create_namespaced_secret(ns, {"metadata": {"name": "students-own"}})

    hub.stop_server(student)
    _assert_cluster_cleaned_up(kube, ns)


def test_culling_cleans_up_even_when_the_notebook_pod_is_already_gone(kube: Kube, hub: HubProcess, student: str):
    """jupyterhub-idle-culler stops a server with ``DELETE /users/{name}/server``: that is the path tested."""
    from kubernetes import client

    hub.start_server(student)
    hub.wait_ready(student)
    ns = namespace_name(student)
    _leave_a_cluster_behind(kube, ns, student)
    client.CoreV1Api(kube.admin).delete_namespaced_pod(_notebook_pod_name(kube, ns), ns, grace_period_seconds=0)

    hub.stop_server(student)
    _assert_cluster_cleaned_up(kube, ns)


def test_a_gpu_profile_puts_the_notebook_on_a_gpu_node_and_its_limits_apply_at_that_spawn(
    kube: Kube, hub: HubProcess, student: str
):
    from kubernetes import client

    core = client.CoreV1Api(kube.admin)
    ns = namespace_name(student)
    hub.start_server(student)  # the default CPU profile first: a quota without GPUs
    hub.wait_ready(student)
    before = core.read_namespaced_resource_quota(RESOURCE_QUOTA, ns)
    assert before.spec.hard["requests.nvidia.com/gpu"] == "0"
    hub.stop_server(student)

    hub.start_server(student, {"profile": "gpu"})
    hub.wait_ready(student)
    pod = _pod(kube, ns, _notebook_pod_name(kube, ns))
    assert pod["spec"]["nodeName"].startswith("gpu-")
    container = pod["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["spec"]["tolerations"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["OCCAM_K8S_GPU_NODE_SELECTOR"] == '{"occam.io/gpu": "true"}'
    assert '"nvidia.com/gpu"' in env["OCCAM_K8S_GPU_TOLERATIONS"]
    # The profile's course limits were applied to the same quota at this spawn, so GPU executors may run.
    after = core.read_namespaced_resource_quota(RESOURCE_QUOTA, ns)
    assert after.metadata.uid == before.metadata.uid
    assert after.spec.hard["requests.nvidia.com/gpu"] == "3"
    hub.stop_server(student)


def test_a_gpu_profile_no_node_can_take_fails_the_spawn_at_once_saying_why(kube: Kube, hub: HubProcess, student: str):
    """The spawn fails within seconds, so the hub's POST itself may already answer 500 with the reason."""
    from kubernetes import client

    hub.api("POST", f"/users/{student}", ok=(201,))
    status, raw = hub.request("POST", f"{hub.url}/hub/api/users/{student}/server", {"profile": "gpu-a100"})
    assert status in (201, 202, 500), raw[:300]
    if status == 500:
        assert "occam.io/gpu-model=a100" in json.loads(raw)["message"]
    # Far less than start_timeout (180 s), which is how long a pod that can never be scheduled would wait.
    hub.wait_stopped(student, timeout=60)
    events = list(hub.progress_events(student))
    assert events[-1]["failed"] is True
    message = events[-1]["message"]
    assert "no node in the cluster could ever run this server" in message
    assert "cpu-0, cpu-1, gpu-0, gpu-1: lacks the label(s) occam.io/gpu-model=a100" in message
    pods = client.CoreV1Api(kube.admin).list_pod_for_all_namespaces(
        field_selector=f"metadata.namespace={namespace_name(student)}"
    )
    assert pods.items == [], "no pod was made"
