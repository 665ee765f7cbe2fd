"""OccamSpawner built from traitlets config, with no hub and no cluster: traits, validation, wiring.

KubeSpawner loads a kubeconfig and makes its (asyncio) API client when constructed, inside a running
event loop; here the kubeconfig names an address nothing listens on, and no request is ever sent.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("kubespawner", reason="the spawner needs the hub extra: pip install -e '.[hub]'")

from kubespawner import KubeSpawner  # noqa: E402
from traitlets import TraitError  # noqa: E402
from traitlets.config import Config  # noqa: E402

from occam.errors import ConfigError  # noqa: E402
from spawner import preparation  # noqa: E402
from spawner.apply import Applied  # noqa: E402
from spawner.limits import CourseLimits  # noqa: E402
from spawner.namespace import HUB_BOUND_KINDS, SERVICE_ACCOUNT, namespace_name, namespace_objects  # noqa: E402
from spawner.spawner import EXECUTOR_SELECTOR, OccamSpawner, course_limits_from  # noqa: E402

FAKE_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: fake, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: fake, user: {token: not-a-token}}]
contexts: [{name: fake, context: {cluster: fake, user: fake}}]
current-context: fake
"""

LIMITS = {"max_executors": 3, "cpu": "6", "memory": "12Gi", "gpus": 1}


@pytest.fixture(autouse=True)
def kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Point both Kubernetes clients at the fake kubeconfig (they read KUBECONFIG at import, so patch)."""
    from kubespawner.clients import load_config

    path = tmp_path / "kubeconfig"
    path.write_text(FAKE_KUBECONFIG)
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.setattr("kubernetes_asyncio.config.kube_config.KUBE_CONFIG_DEFAULT_LOCATION", str(path))
    monkeypatch.setattr("kubernetes.config.kube_config.KUBE_CONFIG_DEFAULT_LOCATION", str(path))
    load_config.cache_clear()  # KubeSpawner loads its configuration once per process
    yield
    load_config.cache_clear()


def run(check: Callable[[], Any]) -> Any:
    """Run ``check`` (a coroutine function) in a fresh event loop, as the hub would."""
    return asyncio.run(check())


def make(**settings: Any) -> OccamSpawner:
    """An OccamSpawner for KubeSpawner's mock user ``mock@name``, configured like a jupyterhub_config.py."""
    config = Config()
    for name, value in settings.items():
        setattr(config.OccamSpawner, name, value)
    return OccamSpawner(_mock=True, config=config)


def test_it_is_a_kubespawner_with_the_course_limits():
    async def check() -> None:
        spawner = make(course_limits=LIMITS, image="reg/notebook:1")
        assert isinstance(spawner, KubeSpawner)
        assert spawner.limits == CourseLimits(max_executors=3, cpu="6", memory="12Gi", gpus=1)
        assert spawner.enable_user_namespaces is True

    run(check)


def test_each_user_gets_their_own_namespace():
    async def check() -> None:
        spawner = make()
        assert spawner.namespace == namespace_name("mock@name")
        assert spawner.namespace.startswith("occam-")
        assert spawner.dns_name.endswith(f".{spawner.namespace}.svc.cluster.local")
        prefixed = make(namespace_prefix="course-a-")
        assert prefixed.namespace == namespace_name("mock@name", prefix="course-a-")
        assert prefixed.namespace.startswith("course-a-")

    run(check)


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ({"max_executors": 0, "cpu": "4", "memory": "8Gi"}, "max_executors=0 must be at least 1"),
        ({"max_executors": 2, "cpu": "four", "memory": "8Gi"}, "cpu='four' is not a Kubernetes quantity"),
        ({"max_executors": 2, "cpu": "4"}, "must set memory"),
        ({"max_executors": 2, "cpu": "4", "memory": "8Gi", "gpu": 1}, "unknown key.*gpu"),
        ({"max_executors": 2, "cpu": "1", "memory": "8Gi"}, "executor_max_cpu='2' is more than"),
    ],
)
def test_bad_course_limits_are_refused_naming_the_setting(limits: dict[str, Any], message: str):
    async def check() -> None:
        with pytest.raises(TraitError, match=f"OccamSpawner.course_limits: .*{message}"):
            make(course_limits=limits)

    run(check)


def test_course_limits_from_gives_a_config_error():
    with pytest.raises(ConfigError, match="must be a dict"):
        course_limits_from(["4"])
    assert course_limits_from({"max_executors": 1, "cpu": "2", "memory": "4Gi"}).max_executors == 1


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"enable_user_namespaces": False}, "enable_user_namespaces cannot be False"),
        ({"hub_selector": {}}, "hub_selector=.*must map at least one label"),
        ({"namespace_prefix": "Occam_"}, "namespace_prefix: namespace prefix 'Occam_' must start"),
        ({"gpu_node_selector": {"gpu": True}}, "gpu_node_selector=.*must map label names to string values"),
    ],
)
def test_bad_settings_are_refused(settings: dict[str, Any], message: str):
    async def check() -> None:
        with pytest.raises(TraitError, match=message):
            make(**settings)

    run(check)


def test_the_executor_image_defaults_to_the_notebook_image():
    async def check() -> None:
        env = make(image="reg/notebook:1").get_env()
        assert env["OCCAM_K8S_EXECUTOR_IMAGE"] == "reg/notebook:1"
        env = make(image="reg/notebook:1", executor_image="reg/executor:1").get_env()
        assert env["OCCAM_K8S_EXECUTOR_IMAGE"] == "reg/executor:1"

    run(check)


def test_a_course_tracking_server_reaches_the_notebook_only_when_set():
    async def check() -> None:
        assert "OCCAM_TRACKING_URI" not in make().get_env()
        env = make(tracking_uri="http://mlflow.occam.svc:5000").get_env()
        assert env["OCCAM_TRACKING_URI"] == "http://mlflow.occam.svc:5000"

    run(check)


def test_the_pod_manifest_carries_occams_labels_account_and_env():
    async def check() -> None:
        spawner = make(
            image="reg/notebook:1",
            image_pull_policy="Always",
            gpu_node_selector={"nvidia.com/gpu.present": "true"},
            gpu_tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            service_account="someone-else",
            extra_labels={"course": "ml101"},
            environment={"A": "1", "OCCAM_K8S_USER": "not-the-user"},
        )
        pod = await spawner.get_pod_manifest()
        manifest = spawner.api.api_client.sanitize_for_serialization(pod)
        labels = manifest["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "occam"
        assert labels["app.kubernetes.io/component"] == "notebook"
        assert labels["component"] == "singleuser-server"  # what KubeSpawner's pod reflector watches
        assert labels["course"] == "ml101"  # the admin's own labels are kept
        assert manifest["spec"]["serviceAccountName"] == SERVICE_ACCOUNT
        assert manifest["spec"]["automountServiceAccountToken"] is True
        env = {item["name"]: item for item in manifest["spec"]["containers"][0]["env"]}
        assert env["OCCAM_K8S_POD_IP"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
        assert env["OCCAM_K8S_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
        assert env["OCCAM_K8S_POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
        assert env["OCCAM_K8S_POD_UID"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.uid"}}
        assert env["OCCAM_K8S_EXECUTOR_IMAGE"]["value"] == "reg/notebook:1"
        assert env["OCCAM_K8S_IMAGE_PULL_POLICY"]["value"] == "Always"
        assert env["OCCAM_K8S_USER"]["value"] == "mock@name"  # Occam's variables win over the environment's
        assert env["A"]["value"] == "1"  # and the others are kept
        assert env["OCCAM_K8S_GPU_NODE_SELECTOR"]["value"] == '{"nvidia.com/gpu.present": "true"}'
        assert "NoSchedule" in env["OCCAM_K8S_GPU_TOLERATIONS"]["value"]

    run(check)


def test_the_pod_manifest_meets_the_restricted_pod_security_standard():
    async def check() -> None:
        spawner = make(
            image="reg/notebook:1",
            uid=1000,
            fs_gid=100,
            allow_privilege_escalation=True,
            container_security_context={"capabilities": {"add": ["SYS_ADMIN", "NET_BIND_SERVICE"]}},
            pod_security_context={"seccompProfile": {"type": "Unconfined"}},
            init_containers=[{"name": "setup", "image": "busybox", "securityContext": {"privileged": True}}],
        )
        manifest = spawner.api.api_client.sanitize_for_serialization(await spawner.get_pod_manifest())
        pod = manifest["spec"]["securityContext"]
        assert pod["runAsNonRoot"] is True
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["fsGroup"] == 100  # KubeSpawner's settings are kept
        for container in [*manifest["spec"]["initContainers"], *manifest["spec"]["containers"]]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False
            assert context["privileged"] is False
            assert context["runAsNonRoot"] is True
            assert context["capabilities"]["drop"] == ["ALL"]
            assert set(context["capabilities"].get("add", [])) <= {"NET_BIND_SERVICE"}
        assert manifest["spec"]["containers"][0]["securityContext"]["runAsUser"] == 1000

    run(check)


@pytest.fixture(autouse=True)
def no_identity_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No API server here: the hub's identity and the check that its RoleBinding took effect are stood in for
    (the kubernetes tier makes both calls for real). The hub's shared client is closed after each test."""
    monkeypatch.setattr(preparation, "own_username", lambda api_client: "system:serviceaccount:jhub:hub")
    monkeypatch.setattr(preparation, "wait_until_allowed", lambda *args, **kwargs: None)
    monkeypatch.setattr(preparation, "_hub_users", {})
    yield
    preparation.close_api_clients()


def test_namespace_preparation_runs_in_a_thread_with_the_settings(monkeypatch: pytest.MonkeyPatch):
    calls: list[dict[str, Any]] = []

    def fake_prepare(api_client: Any, objects: list[dict[str, Any]], **kwargs: Any) -> list[Applied]:
        calls.append({"objects": objects, **kwargs})
        return [Applied("Namespace", objects[0]["metadata"]["name"], "created")]

    monkeypatch.setattr(preparation, "prepare_namespace", fake_prepare)

    async def check() -> None:
        spawner = make(
            course_limits=LIMITS, hub_namespace="jhub", hub_selector={"component": "proxy"}, check_node_fit=False
        )
        await spawner._ensure_namespace()  # what KubeSpawner calls at the start of a spawn
        applied = await spawner.prepare_user_namespace()
        assert applied == [Applied("Namespace", spawner.namespace, "created")]

    run(check)
    assert len(calls) == 2
    assert calls[0]["objects"] == namespace_objects(
        "mock@name",
        course_limits_from(LIMITS),
        hub_namespace="jhub",
        hub_selector={"component": "proxy"},
        hub_user="system:serviceaccount:jhub:hub",
        prefix="occam-",
    )


def test_a_saved_namespace_that_is_not_occams_is_left_at_the_next_spawn(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(preparation, "prepare_namespace", lambda *args, **kwargs: [])

    async def check() -> None:
        spawner = make(namespace_prefix="ml101-")
        spawner.load_state({"namespace": "jhub", "pod_name": "jupyter-mock"})
        assert spawner.namespace == "jhub"
        await spawner.prepare_user_namespace()
        assert spawner.namespace == namespace_name("mock@name", prefix="ml101-")
        assert spawner.dns_name == f"jupyter-mock.{spawner.namespace}.svc.cluster.local"

    run(check)


def test_a_namespace_preparation_that_hangs_fails_the_spawn(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(preparation, "prepare_namespace", lambda *args, **kwargs: time.sleep(1.0))

    async def check() -> None:
        spawner = make(namespace_prepare_timeout=0.1)
        with pytest.raises(ConfigError, match=r"preparing namespace occam-.* took over 0.1 s"):
            await spawner.prepare_user_namespace()

    run(check)


class FakeCoreApi:
    """Records delete-collection calls, as kubernetes_asyncio's CoreV1Api would receive them."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    async def delete_collection_namespaced_pod(self, namespace: str, *, label_selector: str) -> None:
        self.calls.append(("pods", namespace, label_selector))

    async def delete_collection_namespaced_secret(self, namespace: str, *, label_selector: str) -> None:
        self.calls.append(("secrets", namespace, label_selector))


@pytest.mark.parametrize("notebook_stop_fails", [False, True])
def test_stop_deletes_executors_after_the_notebook_pod(monkeypatch: pytest.MonkeyPatch, notebook_stop_fails: bool):
    order: list[str] = []

    async def fake_stop(self: KubeSpawner, now: bool = False) -> None:
        order.append("notebook")
        if notebook_stop_fails:
            raise TimeoutError("pod did not disappear")

    monkeypatch.setattr(KubeSpawner, "stop", fake_stop)

    async def check() -> None:
        spawner = make()
        api = FakeCoreApi()
        spawner.api = api
        if notebook_stop_fails:
            with pytest.raises(TimeoutError):
                await spawner.stop(now=True)
        else:
            await spawner.stop(now=True)
        order.extend(kind for kind, _, _ in api.calls)
        assert api.calls == [
            ("pods", spawner.namespace, EXECUTOR_SELECTOR),
            ("secrets", spawner.namespace, EXECUTOR_SELECTOR),
        ]

    run(check)
    assert order == ["notebook", "pods", "secrets"]
    assert EXECUTOR_SELECTOR == (
        "app.kubernetes.io/name=occam,app.kubernetes.io/component!=notebook,"
        "app.kubernetes.io/component!=model-service,!occam.io/batch-job"
    )


def test_the_blocking_client_uses_the_hubs_kubeconfig_and_overrides():
    async def check() -> None:
        client = make().make_api_client()
        try:
            assert client.configuration.host == "https://127.0.0.1:9"
        finally:
            client.close()
        client = make(k8s_api_host="https://10.0.0.1:6443", k8s_api_verify_ssl=False).make_api_client()
        try:
            assert client.configuration.host == "https://10.0.0.1:6443"
            assert client.configuration.verify_ssl is False
        finally:
            client.close()

    run(check)


def test_the_pod_security_level_is_restricted_or_baseline():
    async def check() -> None:
        assert make().pod_security_level == "restricted"
        assert make(pod_security_level="baseline").pod_security_level == "baseline"
        with pytest.raises(TraitError, match="OccamSpawner.pod_security_level: .*never allow privileged"):
            make(pod_security_level="privileged")

    run(check)


def test_an_nfs_shared_volume_under_restricted_fails_the_spawn_saying_what_to_use(monkeypatch: pytest.MonkeyPatch):
    async def check() -> None:
        spawner = make(shared_work_volume={"nfs": {"server": "nfs.example.org", "path": "/w"}}, check_node_fit=False)
        with pytest.raises(ConfigError, match="restricted level .* refuses .*persistentVolumeClaim"):
            await spawner._ensure_namespace()

    run(check)


def test_a_work_storage_class_mounts_the_student_s_own_claim_unless_a_volume_is_named():
    async def check() -> None:
        spawner = make(work_storage_class="nfs-client", shared_work_path="/srv/work")
        assert spawner.work_volume == {"persistentVolumeClaim": {"claimName": "occam-work"}}
        assert spawner.get_env()["OCCAM_K8S_SHARED_PATH"] == "/srv/work"
        named = make(work_storage_class="nfs-client", shared_work_volume={"nfs": {"server": "n", "path": "/x"}})
        assert named.work_volume == {"nfs": {"server": "n", "path": "/x"}}
        assert make().work_volume == {}
        with pytest.raises(TraitError, match="work_storage_size"):
            make(work_storage_class="nfs-client", work_storage_size="lots")

    run(check)


def test_the_work_claim_is_applied_after_the_hub_may_act_in_the_namespace(monkeypatch: pytest.MonkeyPatch):
    calls: list[list[str]] = []

    def fake_prepare(api_client: Any, objects: list[dict[str, Any]], **kwargs: Any) -> list[Applied]:
        calls.append([o["kind"] for o in objects])
        return []

    monkeypatch.setattr(preparation, "prepare_namespace", fake_prepare)

    async def check() -> None:
        await make(work_storage_class="nfs-client", check_node_fit=False).prepare_user_namespace()

    run(check)
    # One call; prepare_namespace applies the kinds of HUB_BOUND_KINDS last, once the hub's RoleBinding is in force.
    (kinds,) = calls
    assert kinds[-1] == "PersistentVolumeClaim" and "PersistentVolumeClaim" in HUB_BOUND_KINDS
