"""OccamSpawner against a real API server: namespace preparation, the notebook pod it makes, and stop.

No JupyterHub process: the spawner is made with KubeSpawner's mock hub, for a fresh user, with the
test's admin kubeconfig as the hub's credentials. Its own methods prepare the namespace, build the pod
manifest (KubeSpawner's, plus :mod:`spawner.notebook_pod`) and stop the server; the pod is created
through KubeSpawner's asyncio client, as ``start`` would.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("kubespawner", reason="the spawner needs the hub extra: pip install -e '.[hub]'")

from traitlets.config import Config  # noqa: E402

from spawner.apply import APPLIED, CREATED  # noqa: E402
from spawner.namespace import NOTEBOOK_LABELS, SERVICE_ACCOUNT, namespace_name  # noqa: E402
from spawner.spawner import OccamSpawner  # noqa: E402

from .fixtures import Kube  # noqa: E402
from .student import restricted_pod_spec, wait_running, wait_until  # noqa: E402

PAUSE = "registry.k8s.io/pause:3.10"
LIMITS = {"max_executors": 2, "cpu": "4", "memory": "8Gi", "gpus": 0}


@pytest.fixture
def username(kube: Kube, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh user whose namespace is deleted afterwards; both Kubernetes clients use the admin kubeconfig."""
    from kubernetes import client
    from kubespawner.clients import load_config

    path = str(kube.kubeconfig)
    monkeypatch.setattr("kubernetes_asyncio.config.kube_config.KUBE_CONFIG_DEFAULT_LOCATION", path)
    monkeypatch.setattr("kubernetes.config.kube_config.KUBE_CONFIG_DEFAULT_LOCATION", path)
    load_config.cache_clear()
    name = f"Student.{uuid.uuid4().hex[:8]}"
    yield name
    load_config.cache_clear()
    try:
        client.CoreV1Api(kube.admin).delete_namespace(namespace_name(name))
    except client.ApiException as exc:
        if exc.status != 404:
            raise


def _spawner(username: str) -> OccamSpawner:
    config = Config()
    config.OccamSpawner.course_limits = LIMITS
    config.OccamSpawner.image = PAUSE
    config.OccamSpawner.executor_image = "reg/occam-executor:1"
    config.OccamSpawner.hub_namespace = "jhub"
    config.OccamSpawner.gpu_node_selector = {"nvidia.com/gpu.present": "true"}
    # Within the course's per-container maximum, so the LimitRange admits the notebook.
    config.OccamSpawner.cpu_limit = 1.0
    config.OccamSpawner.cpu_guarantee = 1.0
    config.OccamSpawner.mem_limit = "1G"
    config.OccamSpawner.mem_guarantee = "1G"
    user = SimpleNamespace(name=username, id=1, url=f"/user/{username}/")
    return OccamSpawner(_mock=True, user=user, config=config)


def test_spawner_prepares_the_namespace_and_runs_the_notebook_pod(kube: Kube, username: str):
    from kubernetes import client

    core = client.CoreV1Api(kube.admin)
    ns = namespace_name(username)

    async def scenario() -> dict[str, Any]:
        spawner = _spawner(username)
        assert spawner.namespace == ns
        try:
            applied = await spawner.prepare_user_namespace()
            # The namespace, the notebook's account, its and the hub's RoleBindings, quota, limits, 5 policies.
            assert Counter(a.kind for a in applied) == {
                "Namespace": 1, "ServiceAccount": 1, "RoleBinding": 2, "ResourceQuota": 1, "LimitRange": 1,
                "NetworkPolicy": 6,  # deny, DNS, own cluster, notebook, model service, API server
            }  # fmt: skip
            assert [a.action for a in applied] == [CREATED] * len(applied)
            again = await spawner.prepare_user_namespace()
            assert [(a.kind, a.action) for a in again] == [(a.kind, APPLIED) for a in applied]

            pod = await spawner.get_pod_manifest()
            await spawner.api.create_namespaced_pod(ns, pod)
            running = await asyncio.to_thread(wait_running, core, ns, spawner.pod_name)
            notebook = kube.admin.sanitize_for_serialization(running)

            # Occam's leftovers of a cluster, and one Secret that is not Occam's.
            executor = {"app.kubernetes.io/name": "occam", "app.kubernetes.io/component": "executor"}
            core.create_namespaced_pod(
                ns,
                {
                    "metadata": {"name": "occam-ab12-exec-1", "labels": executor},
                    "spec": restricted_pod_spec({"name": "executor", "image": PAUSE}),
                },
            )
            core.create_namespaced_secret(ns, {"metadata": {"name": "occam-ab12", "labels": executor}})
            core.create_namespaced_secret(ns, {"metadata": {"name": "students-own"}})

            await spawner.stop(now=True)
            return notebook
        finally:
            await OccamSpawner._stop_all_reflectors()

    notebook = asyncio.run(scenario())

    metadata, spec = notebook["metadata"], notebook["spec"]
    assert metadata["namespace"] == ns
    assert metadata["labels"].items() >= NOTEBOOK_LABELS.items()
    assert spec["serviceAccountName"] == SERVICE_ACCOUNT
    assert spec["automountServiceAccountToken"] is True
    # The ServiceAccount admission plugin mounted the notebook account's token.
    assert any(v["name"].startswith("kube-api-access-") for v in spec.get("volumes") or [])
    env = {item["name"]: item for item in spec["containers"][0]["env"]}
    assert env["OCCAM_K8S_POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    assert env["OCCAM_K8S_POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["OCCAM_K8S_POD_UID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.uid"
    assert env["OCCAM_K8S_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert env["OCCAM_K8S_EXECUTOR_IMAGE"]["value"] == "reg/occam-executor:1"
    assert env["OCCAM_K8S_USER"]["value"] == username
    assert env["OCCAM_K8S_GPU_NODE_SELECTOR"]["value"] == '{"nvidia.com/gpu.present": "true"}'
    # The namespace's NetworkPolicy selects this pod.
    policy = client.NetworkingV1Api(kube.admin).read_namespaced_network_policy("occam-notebook", ns)
    assert policy.spec.pod_selector.match_labels.items() <= metadata["labels"].items()

    def gone() -> bool:
        pods = [p.metadata.name for p in core.list_namespaced_pod(ns).items if p.metadata.deletion_timestamp is None]
        return not pods

    wait_until("the notebook and executor pods to be deleted", gone)
    secrets = {s.metadata.name for s in core.list_namespaced_secret(ns).items}
    assert "occam-ab12" not in secrets
    assert "students-own" in secrets
