"""The occam chart against a real API server (the session's control plane, ``kube``).

What is real: the API server (RBAC, admission, validation), Helm (helm-python-sdk) installing and
uninstalling a release, and the spawner's namespace preparation run with the hub account's token.
What is not installed: the Zero to JupyterHub dependency, which cannot be fetched here. Helm refuses to
install a chart whose declared dependency is missing from ``charts/``, even with its condition
(``jupyterhub.enabled``) false (the test checks that refusal), so the release is installed from a
test-time copy of the chart whose Chart.yaml declares no dependency, with ``jupyterhub.enabled=false``:
it holds Occam's own objects only, the hub config ConfigMap and the hub's ClusterRole and
ClusterRoleBinding. The hub's ServiceAccount, which Z2JH would make, is made by the test.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..kubernetes.fixtures import Kube
from ..kubernetes.student import wait_until
from .rendering import CHART, copy_without_dependency, objects, values_file

helm = pytest.importorskip("helm_python", reason="the chart tier needs helm-python-sdk (the dev extra)")

GOOD = ["minimal.yaml", "gpu-course.yaml", "shared-volume.yaml"]
TIMEOUT = 120


@pytest.fixture
def release_namespace(kube: Kube) -> Iterator[str]:
    """A fresh namespace for the release (the hub's namespace); deleted afterwards."""
    from kubernetes import client

    core = client.CoreV1Api(kube.admin)
    name = f"occam-chart-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


def _server_dry_run(api_client: Any, item: dict[str, Any], namespace: str) -> None:
    from kubernetes import utils

    utils.create_from_dict(api_client, item, namespace=namespace, dry_run="All")


@pytest.mark.parametrize("name", [None, *GOOD])
def test_every_rendered_object_passes_a_server_side_dry_run(
    kube: Kube, release_namespace: str, name: str | None
) -> None:
    from kubernetes import client

    items = objects(values_file(name) if name else None, namespace=release_namespace)
    assert items
    for item in items:
        _server_dry_run(kube.admin, item, release_namespace)
    # dry_run="All": the API server validated and admitted each object but stored none.
    rbac = client.RbacAuthorizationV1Api(kube.admin)
    names = {i["metadata"]["name"] for i in items if i["kind"] == "ClusterRole"}
    assert not names & {r.metadata.name for r in rbac.list_cluster_role().items}


def _hub_client(kube: Kube, namespace: str, account: str) -> Any:
    """An ApiClient authenticated as ServiceAccount ``namespace/account`` (a TokenRequest token)."""
    from kubernetes import client

    core = client.CoreV1Api(kube.admin)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": account}})
    token = core.create_namespaced_service_account_token(
        account, namespace, {"spec": {"expirationSeconds": 600}}
    ).status.token
    conf = client.Configuration()
    conf.host = kube.admin.configuration.host
    conf.ssl_ca_cert = kube.admin.configuration.ssl_ca_cert
    conf.api_key = {"authorization": f"Bearer {token}"}
    return client.ApiClient(conf)


def _ours(kube: Kube, namespace: str, role: str) -> list[str]:
    from kubernetes import client

    core = client.CoreV1Api(kube.admin)
    rbac = client.RbacAuthorizationV1Api(kube.admin)
    found = [
        f"ConfigMap {c.metadata.name}"
        for c in core.list_namespaced_config_map(namespace).items
        if c.metadata.name.startswith("occam")
    ]
    found += [f"ClusterRole {r.metadata.name}" for r in rbac.list_cluster_role().items if r.metadata.name == role]
    found += [
        f"ClusterRoleBinding {b.metadata.name}"
        for b in rbac.list_cluster_role_binding().items
        if b.metadata.name == role
    ]
    found += [
        f"Secret {s.metadata.name}"
        for s in core.list_namespaced_secret(namespace).items
        if s.type == "helm.sh/release.v1"
    ]
    return found


def test_install_gives_the_hub_what_the_spawner_needs_and_uninstall_leaves_nothing(
    kube: Kube, release_namespace: str, tmp_path: Path
) -> None:
    from kubernetes import client

    from spawner.apply import CREATED, prepare_namespace, wait_until_allowed
    from spawner.limits import CourseLimits
    from spawner.namespace import namespace_name, namespace_objects

    release = "occam"
    role = f"occam-hub-{release_namespace}-{release}"
    values = {**values_file("gpu-course.yaml"), "jupyterhub": {"enabled": False}}
    user = f"chart-{uuid.uuid4().hex[:6]}"
    student_ns = namespace_name(user, prefix="ml-")
    core = client.CoreV1Api(kube.admin)
    with helm.Config(kubeconfig_path=kube.kubeconfig, namespace=release_namespace) as cfg:
        with (
            helm.Chart.load(CHART) as real,
            pytest.raises(helm.HelmChartInvalidError, match="missing in charts/ directory: jupyterhub"),
        ):
            cfg.install(real, release, values, namespace=release_namespace, timeout=TIMEOUT)
        chart = helm.Chart.load(copy_without_dependency(tmp_path))
        installed = cfg.install(chart, release, values, namespace=release_namespace, timeout=TIMEOUT)
        try:
            assert installed.get("status") == "deployed", {k: v for k, v in installed.items() if k != "manifest"}
            assert sorted(_ours(kube, release_namespace, role)) == sorted(
                [
                    f"ClusterRole {role}",
                    f"ClusterRoleBinding {role}",
                    "ConfigMap occam-hub-config",
                    f"Secret sh.helm.release.v1.{release}.v1",
                ]
            )
            # The hub's account, bound by the chart, prepares a student's namespace as the spawner does at
            # a spawn (Kubernetes refuses the RoleBindings unless the hub may bind the chart's two ClusterRoles),
            # and may watch pods in every namespace and list nodes.
            hub = _hub_client(kube, release_namespace, "occam-hub")
            try:
                limits = CourseLimits(max_executors=4, cpu="16", memory="64Gi", gpus=4)
                applied = wait_until(
                    "the hub's ClusterRoleBinding to take effect",
                    lambda: prepare_namespace(
                        hub,
                        namespace_objects(
                            user,
                            limits,
                            hub_namespace=release_namespace,
                            hub_selector={"app": "jupyterhub", "release": release},
                            prefix="ml-",
                            hub_user=f"system:serviceaccount:{release_namespace}:occam-hub",
                            notebook_cluster_role=f"occam-notebook-{release_namespace}-{release}",
                            hub_namespace_role=f"occam-hub-ns-{release_namespace}-{release}",
                        ),
                    ),
                    timeout=TIMEOUT,
                )
                assert [a.action for a in applied] == [CREATED] * len(applied)
                wait_until_allowed(hub, student_ns, "create", "pods")  # the chart's in-namespace role, bound
                with pytest.raises(client.ApiException) as refused:
                    client.CoreV1Api(hub).list_namespaced_secret("kube-system")
                assert refused.value.status == 403
                client.CoreV1Api(hub).list_pod_for_all_namespaces(limit=1)
                client.CoreV1Api(hub).list_node(limit=1)
                with pytest.raises(client.ApiException) as refused:
                    client.CoreV1Api(hub).delete_namespace(student_ns)
                assert refused.value.status == 403
            finally:
                hub.close()
        finally:
            cfg.uninstall(release, timeout=TIMEOUT)
            chart.close()
            try:
                core.delete_namespace(student_ns)
            except client.ApiException as exc:
                if exc.status != 404:
                    raise
    # Uninstall removed everything of the release; the student's namespace was the spawner's, not Helm's.
    assert wait_until(
        "the release's objects to be deleted",
        lambda: _ours(kube, release_namespace, role) == [] or None,
        timeout=TIMEOUT,
    )
