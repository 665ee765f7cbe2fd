"""What a course admin relies on, against a real API server: image pull Secrets reach every Occam pod of a
student namespace through the notebook's ServiceAccount, and ``occam course status``/``metrics`` count the
pods the cluster really holds (kwok nodes, so pods are scheduled and reported but no container runs).

The spawner's side runs with the hub's own least-privilege account (:func:`tests.hub.hubprocess.hub_account_kubeconfig`:
the ClusterRole of :func:`spawner.hub_rbac.hub_cluster_role`, plus the chart's Role that reads the pull Secret by
name in the hub's namespace), so these tests also prove the hub reads that Secret and no other, and applies its
copy through its own RoleBinding in the student's namespace.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from occam.errors import ConfigError
from occam.kubernetes.objects import executor_pod_template
from occam.kubernetes.settings import settings_from_env
from occam.spec import ClusterSpec
from spawner.apply import own_username, prepare_namespace, read_pull_secrets
from spawner.hub_rbac import pull_secret_reader_rules
from spawner.limits import CourseLimits
from spawner.namespace import SERVICE_ACCOUNT, namespace_name, namespace_objects

from .fixtures import Kube
from .student import restricted_pod_spec, wait_until

LIMITS = CourseLimits(max_executors=3, cpu="6", memory="12Gi", gpus=2)
PAUSE = "registry.k8s.io/pause:3.10"
REGISTRY = {"auths": {"registry.example.org": {"auth": base64.b64encode(b"course:s3cret").decode()}}}


@pytest.fixture
def hub_namespace(kube: Kube) -> Iterator[str]:
    from kubernetes import client

    core = client.CoreV1Api(kube.admin)
    name = f"jhub-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


@pytest.fixture
def student(kube: Kube) -> Iterator[str]:
    from kubernetes import client

    username = f"admin-test-{uuid.uuid4().hex[:8]}"
    yield username
    with contextlib.suppress(client.ApiException):
        client.CoreV1Api(kube.admin).delete_namespace(namespace_name(username))


@pytest.fixture
def hub_client(kube: Kube, tmp_path: Path) -> Iterator[Any]:
    from kubernetes import config

    from tests.hub.hubprocess import hub_account_kubeconfig

    path = hub_account_kubeconfig(kube.admin, tmp_path / "hub-kubeconfig")
    api_client = config.new_client_from_config(str(path))
    yield api_client
    api_client.close()


def test_the_pull_secret_reaches_the_namespace_and_every_pod_of_the_notebook_account(
    kube: Kube, hub_namespace: str, student: str, hub_client: Any
) -> None:
    from kubernetes import client

    core = client.CoreV1Api(kube.admin)
    core.create_namespaced_secret(
        hub_namespace,
        {
            "metadata": {"name": "registry-credentials"},
            "type": "kubernetes.io/dockerconfigjson",
            "stringData": {".dockerconfigjson": json.dumps(REGISTRY)},
        },
    )
    core.create_namespaced_secret(hub_namespace, {"metadata": {"name": "hub-secret"}, "stringData": {"k": "v"}})
    # What the chart's pull-secret Role grants the hub in its own namespace: get on those names only.
    rbac = client.RbacAuthorizationV1Api(kube.admin)
    reader = {
        "metadata": {"name": "occam-hub-pull-secrets"},
        "rules": pull_secret_reader_rules(["registry-credentials"]),
    }
    rbac.create_namespaced_role(hub_namespace, reader)
    rbac.create_namespaced_role_binding(
        hub_namespace,
        {
            "metadata": {"name": "occam-hub-pull-secrets"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "occam-hub-pull-secrets"},
            "subjects": [{"kind": "ServiceAccount", "name": "hub", "namespace": "occam-hub"}],
        },
    )
    hub = {"hub_namespace": hub_namespace, "hub_selector": {"app": "jupyterhub"}, "hub_user": own_username(hub_client)}
    # A Role just made takes a moment to reach the authorizer.
    sources = wait_until(
        "the hub may read the pull Secret (its Role)",
        lambda: read_pull_secrets(hub_client, hub_namespace, ["registry-credentials"]),
        timeout=15,
    )
    with pytest.raises(Exception, match="403|[Ff]orbidden|refused"):
        read_pull_secrets(hub_client, hub_namespace, ["hub-secret"])  # any other Secret of its namespace: no
    # The copy is made through the hub's RoleBinding in the student's namespace (prepare_namespace waits for it).
    prepare_namespace(hub_client, namespace_objects(student, LIMITS, **hub, pull_secrets=sources))
    ns = namespace_name(student)

    copied = core.read_namespaced_secret("registry-credentials", ns)
    assert copied.type == "kubernetes.io/dockerconfigjson"
    assert json.loads(base64.b64decode(copied.data[".dockerconfigjson"])) == REGISTRY
    account = core.read_namespaced_service_account(SERVICE_ACCOUNT, ns)
    assert [s.name for s in account.image_pull_secrets] == ["registry-credentials"]
    # a second spawn writes nothing new
    before = copied.metadata.resource_version
    prepare_namespace(hub_client, namespace_objects(student, LIMITS, **hub, pull_secrets=sources))
    assert core.read_namespaced_secret("registry-credentials", ns).metadata.resource_version == before

    # The executor pod the Kubernetes backend builds from the spawner's environment (OCCAM_K8S_SERVICE_ACCOUNT is
    # the notebook's account) names no pull secret itself: the API server adds the account's.
    settings = settings_from_env(
        {},
        namespace=ns,
        pod_name="jupyter-x",
        pod_ip="10.0.0.1",
        executor_image="registry.example.org/occam-notebook:1",
        service_account=SERVICE_ACCOUNT,
    )
    pod = executor_pod_template(ClusterSpec(n=1, name="pull-check"), settings)
    assert "imagePullSecrets" not in pod["spec"]
    pod["metadata"]["name"] = "pull-check-exec-1"
    created = core.create_namespaced_pod(ns, pod)
    assert [s.name for s in created.spec.image_pull_secrets] == ["registry-credentials"]

    # A name the admin listed (so the hub's Role names it) that was never created: a clear error naming the fix.
    rbac.patch_namespaced_role(
        "occam-hub-pull-secrets",
        hub_namespace,
        {"rules": pull_secret_reader_rules(["registry-credentials", "missing"])},
    )
    wait_until(
        "the hub's Role to name the missing Secret",
        lambda: _refuses_as_missing(hub_client, hub_namespace),
        timeout=15,
    )
    # A name its Role does not list: refused by the API server, and the error says which setting lists names.
    with pytest.raises(Exception, match="occam.imagePullSecrets"):
        read_pull_secrets(hub_client, hub_namespace, ["hub-secret"])


def _refuses_as_missing(hub_client: Any, namespace: str) -> bool:
    try:
        read_pull_secrets(hub_client, namespace, ["missing"])
    except ConfigError as exc:
        return "does not exist in the hub's namespace" in str(exc)
    except Exception:
        return False
    raise AssertionError("a Secret that does not exist was read")


def test_course_status_and_metrics_count_what_the_students_hold(kube: Kube, student: str, hub_client: Any) -> None:
    from kubernetes import client

    from occam.cli import main

    prepare_namespace(hub_client, namespace_objects(student, LIMITS, hub_namespace="jhub", hub_selector={"app": "x"}))
    ns = namespace_name(student)
    core = client.CoreV1Api(kube.admin)

    def occam_pod(name: str, role: str, gpus: int = 0) -> dict[str, Any]:
        resources: dict[str, Any] = {
            "requests": {"cpu": "500m", "memory": "512Mi"},
            "limits": {"cpu": "500m", "memory": "512Mi"},
        }
        tolerations = []
        if gpus:
            resources["limits"]["nvidia.com/gpu"] = str(gpus)
            tolerations = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
        labels = {"app.kubernetes.io/name": "occam", "app.kubernetes.io/component": role, "occam.io/cluster": "c1"}
        spec = restricted_pod_spec({"name": "main", "image": PAUSE, "resources": resources}, tolerations=tolerations)
        return {"metadata": {"name": name, "labels": labels}, "spec": spec}

    core.create_namespaced_pod(ns, occam_pod("jupyter", "notebook"))
    core.create_namespaced_pod(ns, occam_pod("c1-exec-1", "executor", gpus=1))
    core.create_namespaced_pod(ns, occam_pod("c1-exec-2", "executor", gpus=1))
    wait_until(
        "kwok to report the student's pods Running",
        lambda: all(p.status.phase == "Running" for p in core.list_namespaced_pod(ns).items) or None,
        timeout=60,
    )

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["course", "status", "--kubeconfig", str(kube.kubeconfig)]) == 0
    (line,) = [line for line in out.getvalue().splitlines() if line.startswith(student)]
    assert line.split() == [student, ns, "running", "1", "2", "2", "-"]

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["course", "metrics", "--kubeconfig", str(kube.kubeconfig)]) == 0
    assert f'occam_gpus_in_use{{namespace="{ns}",user="{student}"}} 2' in out.getvalue()
    assert f'occam_executors{{namespace="{ns}",user="{student}"}} 2' in out.getvalue()
