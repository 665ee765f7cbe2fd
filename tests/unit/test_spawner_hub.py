"""The hub's side: its ClusterRole (spawner.hub_rbac), the node-fit check and clean-up wired into OccamSpawner.

The spawner's Kubernetes client is replaced by a small fake here (no cluster in this tier); the hub tier
(tests/hub) runs the same paths in a real JupyterHub against a real API server.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

pytest.importorskip("kubespawner", reason="the spawner needs the hub extra: pip install -e '.[hub]'")

from kubernetes_asyncio.client import (  # noqa: E402
    V1Container,
    V1Node,
    V1NodeList,
    V1NodeSpec,
    V1NodeStatus,
    V1ObjectMeta,
    V1Pod,
    V1PodList,
    V1PodSpec,
    V1PodStatus,
    V1ResourceRequirements,
    V1Taint,
)
from kubernetes_asyncio.client.rest import ApiException  # noqa: E402

from spawner.hub_rbac import (  # noqa: E402
    CLUSTER_ROLE,
    hub_cluster_role,
    hub_cluster_role_binding,
    hub_namespace_cluster_role,
    hub_rules,
    notebook_cluster_role,
    pull_secret_reader_rules,
)
from spawner.limits import CourseLimits  # noqa: E402
from spawner.namespace import (  # noqa: E402
    HUB_BOUND_KINDS,
    HUB_NAMESPACE_ROLE,
    NOTEBOOK_CLUSTER_ROLE,
    NOTEBOOK_RULES,
    namespace_objects,
)
from spawner.spawner import EXECUTOR_SELECTOR, CourseGpusTaken, OccamSpawner, UnplaceableServer  # noqa: E402

from .test_spawner_config import kubeconfig, make  # noqa: E402, F401

HUB = {"hub_namespace": "jhub", "hub_selector": {"app": "jupyterhub"}}
#: The resource (as RBAC names it) of each kind spawner.apply applies.
_RESOURCES = {
    "Namespace": "namespaces",
    "ServiceAccount": "serviceaccounts",
    "RoleBinding": "rolebindings",
    "ResourceQuota": "resourcequotas",
    "LimitRange": "limitranges",
    "NetworkPolicy": "networkpolicies",
    "Secret": "secrets",
}


@pytest.fixture(autouse=True)
def fresh_node_list() -> None:
    """Each test's fake cluster has its own nodes: forget the node list a previous spawn cached."""
    OccamSpawner._node_list = None


def _allowed(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {(g, r, v) for rule in rules for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}


def test_the_hub_holds_none_of_the_notebook_s_rules_but_may_bind_its_cluster_role():
    # A RoleBinding to a ClusterRole needs "bind" on it (or every rule in it); the hub gets bind, on these two only.
    (bind,) = [r for r in hub_rules() if r["resources"] == ["clusterroles"]]
    assert bind["verbs"] == ["bind"]
    assert bind["resourceNames"] == sorted([NOTEBOOK_CLUSTER_ROLE, HUB_NAMESPACE_ROLE])
    cluster_wide = _allowed([r for r in hub_rules() if r is not bind])
    assert not {(g, r, v) for g, r, v in cluster_wide if r == "secrets"}
    assert ("", "pods", "create") not in cluster_wide and ("", "pods", "delete") not in cluster_wide
    assert {v for _, r, v in cluster_wide if r == "pods"} == {"get", "list", "watch"}
    assert _allowed(notebook_cluster_role()["rules"]) == _allowed(NOTEBOOK_RULES)


def test_inside_a_student_namespace_the_hub_makes_the_notebook_pod_and_cleans_up():
    inside = _allowed(hub_namespace_cluster_role()["rules"])
    for needed in [("", "pods", "create"), ("", "pods", "deletecollection"), ("", "secrets", "deletecollection")]:
        assert needed in inside
    # It copies the course's image pull Secrets in (server-side apply), and never reads a student's Secrets.
    assert {("", "secrets", "create"), ("", "secrets", "patch")} <= inside
    assert not {(g, r, v) for g, r, v in inside if r == "secrets" and v in ("get", "list", "watch")}


def test_the_hub_reads_pull_secrets_by_name_in_its_own_namespace_only():
    assert pull_secret_reader_rules([]) == []
    (rule,) = pull_secret_reader_rules(["registry", "mirror", "registry"])
    assert rule == {
        "apiGroups": [""],
        "resources": ["secrets"],
        "verbs": ["get"],
        "resourceNames": ["mirror", "registry"],
    }


def test_the_hub_role_has_no_wildcards_and_only_namespaces_nodes_and_the_bind_cluster_wide():
    allowed = _allowed(hub_rules())
    assert not any("*" in part for triple in allowed for part in triple)
    cluster_scoped = {r for _, r, _ in allowed} & {"namespaces", "nodes", "clusterroles", "clusterrolebindings"}
    assert cluster_scoped == {"namespaces", "nodes", "clusterroles"}
    assert {v for _, r, v in allowed if r == "nodes"} == {"list"}
    assert {v for _, r, v in allowed if r == "clusterroles"} == {"bind"}
    # get: an existing namespace is read before it is taken over (spawner.apply.check_adoption)
    assert {v for _, r, v in allowed if r == "namespaces"} == {"create", "get", "patch"}
    assert ("", "namespaces", "delete") not in allowed


def test_the_hub_may_apply_every_kind_the_spawner_applies():
    # Server-side apply is a PATCH; when it makes the object, the API server also checks "create".
    allowed = _allowed(hub_rules())
    inside = _allowed(hub_namespace_cluster_role()["rules"])
    pull_secret = {"metadata": {"name": "registry"}, "type": "kubernetes.io/dockerconfigjson", "data": {}}
    limits = CourseLimits(max_executors=1, cpu="2", memory="4Gi")
    objects = namespace_objects(
        "ada", limits, **HUB, hub_user="system:serviceaccount:jhub:hub", pull_secrets=[pull_secret]
    )
    assert "Secret" in {obj["kind"] for obj in objects}
    for obj in objects:
        group = obj["apiVersion"].rpartition("/")[0]
        resource = _RESOURCES[obj["kind"]]
        # The pull Secrets' copies go through the hub's RoleBinding in the namespace, not its ClusterRole.
        rights, where = (inside, "in-namespace") if obj["kind"] in HUB_BOUND_KINDS else (allowed, "cluster-wide")
        for verb in ("create", "patch"):
            assert (group, resource, verb) in rights, f"the hub's {where} ClusterRole lacks {verb} {resource}"


def test_cluster_role_and_binding():
    role = hub_cluster_role()
    assert role["kind"] == "ClusterRole" and role["metadata"]["name"] == CLUSTER_ROLE
    binding = hub_cluster_role_binding("hub", "jhub")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": CLUSTER_ROLE}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "hub", "namespace": "jhub"}]


class FakeApi:
    """What OccamSpawner asks of kubernetes_asyncio's CoreV1Api in these paths."""

    def __init__(self, api_client: Any, nodes: list[V1Node] | None = None, status: int | None = None) -> None:
        self.api_client = api_client
        self.nodes = nodes or []
        self.status = status
        self.calls: list[tuple[str, str, str]] = []
        self.pods: list[V1Pod] = []

    async def list_node(self) -> V1NodeList:
        if self.status:
            raise ApiException(status=self.status, reason="Forbidden")
        return V1NodeList(items=self.nodes)

    async def list_pod_for_all_namespaces(self, *, label_selector: str) -> V1PodList:
        self.calls.append(("list pods", "", label_selector))
        return V1PodList(items=self.pods)

    async def delete_collection_namespaced_pod(self, namespace: str, *, label_selector: str) -> None:
        self.calls.append(("pods", namespace, label_selector))

    async def delete_collection_namespaced_secret(self, namespace: str, *, label_selector: str) -> None:
        self.calls.append(("secrets", namespace, label_selector))


def _node(name: str, labels: dict[str, str], gpus: int = 0) -> V1Node:
    allocatable = {"cpu": "8", "memory": "32Gi", **({"nvidia.com/gpu": str(gpus)} if gpus else {})}
    taints = [V1Taint(key="nvidia.com/gpu", value="present", effect="NoSchedule")] if gpus else None
    return V1Node(
        metadata=V1ObjectMeta(name=name, labels=labels),
        spec=V1NodeSpec(taints=taints),
        status=V1NodeStatus(allocatable=allocatable, capacity=allocatable),
    )


GPU_SETTINGS = {
    "extra_resource_limits": {"nvidia.com/gpu": "1"},
    "node_selector": {"gpu-model": "a100"},
    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
}


def test_a_pod_no_node_can_take_is_refused_before_anything_is_made():
    async def check() -> None:
        spawner = make(**GPU_SETTINGS)
        spawner.api = FakeApi(spawner.api.api_client, [_node("cpu-0", {}), _node("gpu-0", {"gpu-model": "t4"}, 2)])
        with pytest.raises(UnplaceableServer, match="gpu-0: lacks the label.s. gpu-model=a100") as failed:
            await spawner._ensure_namespace()
        # What JupyterHub shows on the spawn page and in its API's error.
        assert failed.value.jupyterhub_message == str(failed.value)
        assert failed.value.log_message % failed.value.args == str(failed.value)

    asyncio.run(check())


def test_a_pod_some_node_can_take_passes(monkeypatch: pytest.MonkeyPatch):
    prepared: list[str] = []

    async def fake_prepare(self: Any) -> list[Any]:
        prepared.append(self.user.name)
        return []

    monkeypatch.setattr("spawner.spawner.OccamSpawner.prepare_user_namespace", fake_prepare)

    async def check() -> None:
        spawner = make(**GPU_SETTINGS)
        spawner.api = FakeApi(spawner.api.api_client, [_node("gpu-0", {"gpu-model": "a100"}, 2)])
        await spawner._ensure_namespace()

    asyncio.run(check())
    assert prepared == ["mock@name"]


def test_without_permission_to_list_nodes_the_check_is_skipped():
    async def check() -> None:
        spawner = make(**GPU_SETTINGS)
        spawner.api = FakeApi(spawner.api.api_client, status=403)
        await spawner.ensure_placeable()
        assert OccamSpawner._node_list is None

    asyncio.run(check())


def test_spawns_that_start_together_share_one_node_list():
    async def check() -> None:
        first, second = make(**GPU_SETTINGS), make(**GPU_SETTINGS)
        first.api = FakeApi(first.api.api_client, [_node("gpu-0", {"gpu-model": "a100"}, 2)])
        second.api = FakeApi(second.api.api_client, status=500)  # would fail if it asked
        await first.ensure_placeable()
        await second.ensure_placeable()

    asyncio.run(check())


def test_every_stop_cleans_up_also_when_the_hub_skipped_stop_because_the_pod_was_gone():
    hooked: list[str] = []

    async def check() -> None:
        spawner = make(post_stop_hook=lambda s: hooked.append(s.user.name))
        spawner.api = FakeApi(spawner.api.api_client)
        await spawner.run_post_stop_hook()  # what JupyterHub's User.stop always calls
        assert spawner.api.calls == [
            ("pods", spawner.namespace, EXECUTOR_SELECTOR),
            ("secrets", spawner.namespace, EXECUTOR_SELECTOR),
        ]

    asyncio.run(check())
    assert hooked == ["mock@name"]


def _gpu_pod(namespace: str, gpus: int, phase: str = "Running") -> V1Pod:
    resources = V1ResourceRequirements(limits={"nvidia.com/gpu": str(gpus)})
    return V1Pod(
        metadata=V1ObjectMeta(
            name=f"p-{namespace}-{gpus}", namespace=namespace, labels={"app.kubernetes.io/name": "occam"}
        ),
        spec=V1PodSpec(containers=[V1Container(name="c", image="i", resources=resources)]),
        status=V1PodStatus(phase=phase),
    )


def test_the_course_wide_gpu_cap_refuses_a_spawn_with_counts_only(caplog: pytest.LogCaptureFixture):
    gpu_limits = {"max_executors": 2, "cpu": "6", "memory": "12Gi", "gpus": 2}

    async def check() -> None:
        spawner = make(**GPU_SETTINGS, course_limits=gpu_limits, max_gpus_in_use=3, check_node_fit=False)
        spawner.api = FakeApi(spawner.api.api_client)
        spawner.api.pods = [_gpu_pod("occam-bob", 2), _gpu_pod("occam-eve", 1), _gpu_pod("occam-old", 4, "Succeeded")]
        with pytest.raises(CourseGpusTaken) as refused:
            await spawner._ensure_namespace()
        message = refused.value.jupyterhub_message
        assert "3 of the 3" in message and "2 running server(s)" in message and "occam-bob" not in message
        assert ("list pods", "", "app.kubernetes.io/name=occam") in spawner.api.calls
        # the admins' log says who
        assert "occam-bob (2), occam-eve (1)" in caplog.text
        # one GPU is given back: the spawn goes on (to the namespace's preparation, stood in for here)
        spawner.api.pods = spawner.api.pods[:1]
        prepared: list[str] = []

        async def prepare() -> list[Any]:
            prepared.append("yes")
            return []

        spawner.prepare_user_namespace = prepare  # type: ignore[method-assign]
        await spawner._ensure_namespace()
        assert prepared == ["yes"]
        # without a cap nothing is listed
        free = make(**GPU_SETTINGS, course_limits=gpu_limits, check_node_fit=False)
        free.api = FakeApi(free.api.api_client)
        free.prepare_user_namespace = prepare  # type: ignore[method-assign]
        await free._ensure_namespace()
        assert free.api.calls == []

    asyncio.run(check())
