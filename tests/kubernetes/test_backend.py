"""The Kubernetes backend against a real API server, with the student's own credentials.

What is real: the API server (TLS, service-account tokens from the TokenRequest API, RBAC, the
ResourceQuota and ServiceAccount admission plugins), the controller manager (garbage collector,
resource-quota and service-account controllers) and the scheduler. What is not: the nodes. kwok
reports pods on its fake nodes Running, but no container ever runs, so no executor ever starts and
``backend.launch()`` (a Spark driver that would wait for executors to register) is not tested here.
These tests assert what the API server holds and refuses.

Each test gets a fresh namespace whose service account has only the Role OccamSpawner grants
(:mod:`.student`), and a stand-in notebook pod created by the admin, as the spawner would, so that
owner references carry a real UID. The backend reads ``KUBECONFIG``, set to the student's kubeconfig.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from occam.backends.kubernetes import KubernetesBackend
from occam.errors import ConfigError
from occam.kubernetes import objects
from occam.kubernetes.api import NamespaceApi
from occam.kubernetes.settings import KubernetesSettings
from occam.spec import ClusterSpec, make_spec

from .student import StudentNamespace, wait_running, wait_until

EXECUTOR_IMAGE = "registry.example/occam-executor:test"  # never pulled: no container runs on kwok's nodes
GPU_SELECTOR = {"occam.io/gpu": "true"}
GPU_TOLERATIONS = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
OCCAM_SELECTOR = f"{objects.APP_LABEL}=occam"


def spec(n: int, name: str, *, gpu: bool = False) -> ClusterSpec:
    return make_spec(n, cores=1, memory="1g", gpu=gpu, timeout=60, name=name)


def executor_pod(spec: ClusterSpec, settings: KubernetesSettings, index: int) -> dict[str, Any]:
    """An executor pod as Spark makes it from the pod template (bar the command, which kwok never runs)."""
    pod = copy.deepcopy(objects.executor_pod_template(spec, settings))
    pod["metadata"]["name"] = f"{objects.resource_name(spec)}-exec-{index}"
    return pod


@pytest.fixture
def student(namespace: StudentNamespace) -> Iterator[Any]:
    """A CoreV1Api with the student's token."""
    from kubernetes import client, config

    api_client = config.new_client_from_config(str(namespace.kubeconfig))
    yield client.CoreV1Api(api_client)
    api_client.close()


@pytest.fixture
def settings(namespace: StudentNamespace, notebook: dict[str, Any]) -> KubernetesSettings:
    return KubernetesSettings(
        namespace=namespace.name,
        pod_name=notebook["metadata"]["name"],
        pod_ip=notebook["status"]["podIP"],
        pod_uid=notebook["metadata"]["uid"],
        executor_image=EXECUTOR_IMAGE,
        user="ada",
        gpu_node_selector=GPU_SELECTOR,
        gpu_tolerations=GPU_TOLERATIONS,
    )


@pytest.fixture
def make_backend(
    namespace: StudentNamespace, settings: KubernetesSettings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[ClusterSpec], KubernetesBackend]]:
    """Backends that reach the API server with the student's kubeconfig, as a notebook pod's token would."""
    monkeypatch.setenv("KUBECONFIG", str(namespace.kubeconfig))
    made: list[KubernetesBackend] = []

    def make(cluster: ClusterSpec) -> KubernetesBackend:
        made.append(KubernetesBackend(cluster, settings=settings))
        return made[-1]

    yield make
    for backend in made:
        backend.api.close()


def gpu_quota(admin: Any, namespace: str, gpus: int) -> None:
    """A ResourceQuota on GPUs, once the resource-quota controller has filled in its status."""
    body = {"metadata": {"name": "gpus"}, "spec": {"hard": {"requests.nvidia.com/gpu": str(gpus)}}}
    admin.create_namespaced_resource_quota(namespace, body)
    wait_until(
        "kube-controller-manager's resourcequota controller to fill in the status of ResourceQuota 'gpus'",
        lambda: (admin.read_namespaced_resource_quota("gpus", namespace).status.hard or {}).get(
            "requests.nvidia.com/gpu"
        ),
    )


def occam_objects(admin: Any, namespace: str, selector: str = OCCAM_SELECTOR) -> list[str]:
    pods = admin.list_namespaced_pod(namespace, label_selector=selector).items
    secrets = admin.list_namespaced_secret(namespace, label_selector=selector).items
    return sorted([f"pod/{p.metadata.name}" for p in pods] + [f"secret/{s.metadata.name}" for s in secrets])


@pytest.fixture
def java() -> None:
    """``check()`` refuses to go on without Java (the driver is a JVM); nothing here starts one."""
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("backend.check() needs a Java runtime on PATH (it is never started here)")


@pytest.mark.usefixtures("java")
def test_check_refuses_more_gpus_than_the_quota_and_creates_nothing(admin, namespace, make_backend):
    gpu_quota(admin, namespace.name, 2)
    backend = make_backend(spec(4, "greedy", gpu=True))
    with pytest.raises(ConfigError) as refused:
        backend.check()
    message = str(refused.value)
    assert "you asked for 4 GPUs; your quota allows 2" in message
    assert "ask for n=2 or fewer" in message
    assert "(ResourceQuota 'gpus', requests.nvidia.com/gpu)" in message
    assert occam_objects(admin, namespace.name) == []


@pytest.mark.usefixtures("java")
def test_quota_in_use_names_the_cluster_and_the_api_server_agrees(admin, student, namespace, settings, make_backend):
    gpu_quota(admin, namespace.name, 2)
    first = spec(2, "first", gpu=True)
    make_backend(first).check()  # fits: 2 of 2
    for index in (1, 2):
        student.create_namespaced_pod(namespace.name, executor_pod(first, settings, index))
        pod = wait_running(student, namespace.name, f"first-exec-{index}")
        assert admin.read_node(pod.spec.node_name).metadata.labels.get("occam.io/gpu") == "true"

    with pytest.raises(
        ConfigError, match=r"you asked for 1 GPU; your quota allows 2 and 2 are in use by cluster first"
    ):
        make_backend(spec(1, "second", gpu=True)).check()

    from kubernetes.client.exceptions import ApiException

    with pytest.raises(ApiException) as refused:  # what Spark would get for a third GPU executor
        student.create_namespaced_pod(namespace.name, executor_pod(first, settings, 3))
    assert refused.value.status == 403
    assert "exceeded quota" in str(refused.value.body)


def test_create_objects_makes_an_owned_secret_that_goes_with_the_notebook_pod(
    admin, namespace, notebook, settings, make_backend, tmp_path
):
    cluster = spec(2, "owned", gpu=True)
    conf = make_backend(cluster).create_objects(str(tmp_path))

    secret = admin.read_namespaced_secret(objects.auth_secret_name(cluster), namespace.name)
    assert secret.metadata.labels == objects.cluster_labels(cluster, settings, component="auth-secret")
    [owner] = secret.metadata.owner_references
    assert (owner.kind, owner.name, owner.uid) == ("Pod", "jupyter-ada", notebook["metadata"]["uid"])
    assert secret.immutable is True
    # Executors read the Secret's value, the driver the file's bytes: the same key (see occam.kubernetes.sparkconf).
    executor_value = base64.b64decode(secret.data[objects.AUTH_SECRET_KEY]).decode()
    assert base64.b64decode(executor_value) == (tmp_path / "spark-auth-secret").read_bytes()

    template_file = tmp_path / "executor-pod-template.json"
    assert conf["spark.kubernetes.executor.podTemplateFile"] == str(template_file)
    template = json.loads(template_file.read_text())
    assert template == objects.executor_pod_template(cluster, settings)
    pod_spec = template["spec"]
    [container] = pod_spec["containers"]
    assert container["image"] == EXECUTOR_IMAGE
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["resources"]["requests"] == {"cpu": "1", "memory": "1408Mi"}  # 1g heap + 384Mi overhead
    assert (pod_spec["nodeSelector"], pod_spec["tolerations"]) == (GPU_SELECTOR, GPU_TOLERATIONS)
    assert pod_spec["automountServiceAccountToken"] is False

    admin.delete_namespaced_pod("jupyter-ada", namespace.name, grace_period_seconds=0)
    wait_until(
        f"the garbage collector to delete Secret {secret.metadata.name} after its owner, the notebook pod, went",
        lambda: not admin.list_namespaced_secret(namespace.name, label_selector=OCCAM_SELECTOR).items,
    )


def test_the_students_account_may_start_executors_in_its_namespace_only(admin, student, namespace, settings):
    from kubernetes.client.exceptions import ApiException

    cluster = spec(1, "confined", gpu=True)
    pod = executor_pod(cluster, settings, 1)
    student.create_namespaced_pod(namespace.name, pod)
    running = wait_running(student, namespace.name, "confined-exec-1")
    assert admin.read_node(running.spec.node_name).metadata.labels.get("occam.io/gpu") == "true"

    for attempt in (
        lambda: student.create_namespaced_pod("default", pod),
        lambda: student.list_namespaced_secret("default"),
        lambda: student.list_node(),
    ):
        with pytest.raises(ApiException) as refused:
            attempt()
        assert refused.value.status == 403

    elsewhere = dataclasses.replace(settings, namespace="default")
    other = NamespaceApi("default", kubeconfig=str(namespace.kubeconfig))
    try:
        with pytest.raises(ConfigError, match=r"refused to let this notebook create a Secret in namespace 'default'"):
            other.create_secret(objects.auth_secret(cluster, elsewhere, objects.new_auth_secret_value()))
    finally:
        other.close()


def test_delete_cluster_removes_that_clusters_pods_and_secrets_only(
    admin, student, namespace, settings, make_backend, tmp_path: Path
):
    gone, kept = spec(2, "gone"), spec(1, "kept")
    backends = {}
    for cluster in (gone, kept):
        backends[cluster.name] = make_backend(cluster)
        (tmp_path / cluster.name).mkdir()
        backends[cluster.name].create_objects(str(tmp_path / cluster.name))
        for index in range(1, cluster.n + 1):
            student.create_namespaced_pod(namespace.name, executor_pod(cluster, settings, index))
            wait_running(student, namespace.name, f"{cluster.name}-exec-{index}")
    before = occam_objects(admin, namespace.name)
    assert len(before) == 5  # 3 pods, 2 Secrets

    backends["gone"].api.delete_cluster(objects.label_value(gone.name))

    gone_selector = f"{OCCAM_SELECTOR},{objects.CLUSTER_LABEL}=gone"
    wait_until(
        "the pods and Secret of cluster 'gone' to be deleted",
        lambda: not occam_objects(admin, namespace.name, gone_selector),
    )
    kept_selector = f"{OCCAM_SELECTOR},{objects.CLUSTER_LABEL}=kept"
    assert occam_objects(admin, namespace.name, kept_selector) == [
        "pod/kept-exec-1",
        "secret/kept-spark-auth",
    ]
    backends["gone"].api.delete_cluster(objects.label_value(gone.name))  # idempotent
