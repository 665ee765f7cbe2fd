"""The spawner's namespace preparation against a real API server (RBAC, admission, quota controller).

The hub's credentials here are the test's admin client, or the hub's own least-privilege account
(:func:`tests.hub.hubprocess.hub_account_kubeconfig`). What is checked: every object is created, owned by
the spawner's field manager; a second apply writes nothing; new course limits reach the ResourceQuota and
LimitRange; a field edited by hand is reset and one the builders no longer set is removed; the hub's
account may do all of it; and the notebook's service account, with a token from the TokenRequest API,
can do what ``start_cluster`` does in its namespace and nothing elsewhere.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from occam.errors import ConfigError
from spawner.apply import APPLIED, CREATED, FIELD_MANAGER, own_username, prepare_namespace, wait_until_allowed
from spawner.limits import CourseLimits
from spawner.namespace import (
    HUB_NAMESPACE_ROLE,
    LIMIT_RANGE,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    NETWORK_POLICY,
    NOTEBOOK_BINDING,
    RESOURCE_QUOTA,
    SERVICE_ACCOUNT,
    USERNAME_ANNOTATION,
    namespace_name,
    namespace_objects,
)

from .fixtures import Kube
from .student import restricted_pod_spec, wait_until

LIMITS = CourseLimits(max_executors=2, cpu="4", memory="8Gi", gpus=1, executor_max_cpu="2", executor_max_memory="4Gi")
HUB = {"hub_namespace": "jhub", "hub_selector": {"app.kubernetes.io/part-of": "jupyterhub"}}
PAUSE = "registry.k8s.io/pause:3.10"


@pytest.fixture
def new_user(kube: Kube) -> Iterator[Callable[[], str]]:
    """Fresh usernames (with a capital, so their namespaces are hashed); their namespaces go afterwards."""
    from kubernetes import client

    made: list[str] = []

    def make() -> str:
        username = f"Student.{uuid.uuid4().hex[:8]}"
        made.append(username)
        return username

    yield make
    core = client.CoreV1Api(kube.admin)
    for username in made:
        try:
            core.delete_namespace(namespace_name(username))
        except client.ApiException as exc:
            if exc.status != 404:
                raise


def _read_all(admin: Any, ns: str) -> dict[str, dict[str, Any]]:
    from kubernetes import client

    core = client.CoreV1Api(admin)
    rbac = client.RbacAuthorizationV1Api(admin)
    networking = client.NetworkingV1Api(admin)
    found = {
        "Namespace": core.read_namespace(ns),
        "ServiceAccount": core.read_namespaced_service_account(SERVICE_ACCOUNT, ns),
        "RoleBinding": rbac.read_namespaced_role_binding(NOTEBOOK_BINDING, ns),
        "ResourceQuota": core.read_namespaced_resource_quota(RESOURCE_QUOTA, ns),
        "LimitRange": core.read_namespaced_limit_range(LIMIT_RANGE, ns),
        "NetworkPolicy": networking.read_namespaced_network_policy(NETWORK_POLICY, ns),
    }
    return {kind: admin.sanitize_for_serialization(obj) for kind, obj in found.items()}


def _versions(objects: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {kind: obj["metadata"]["resourceVersion"] for kind, obj in objects.items()}


def _client_with_token(kube: Kube, token: str) -> Any:
    from kubernetes import client

    admin_conf = kube.admin.configuration
    conf = client.Configuration()
    conf.host = admin_conf.host
    conf.ssl_ca_cert = admin_conf.ssl_ca_cert
    conf.verify_ssl = admin_conf.verify_ssl
    conf.api_key = {"authorization": f"Bearer {token}"}
    return client.ApiClient(conf)


def _notebook_client(kube: Kube, ns: str) -> Any:
    from kubernetes import client

    core = client.CoreV1Api(kube.admin)
    token = core.create_namespaced_service_account_token(
        SERVICE_ACCOUNT, ns, {"spec": {"expirationSeconds": 600}}
    ).status.token
    return _client_with_token(kube, token)


def test_prepare_namespace_creates_every_object(kube: Kube, new_user: Callable[[], str]) -> None:
    from kubernetes import client

    username = new_user()
    ns = namespace_name(username)
    applied = prepare_namespace(kube.admin, namespace_objects(username, LIMITS, **HUB))
    assert [(a.kind, a.action) for a in applied] == [
        ("Namespace", CREATED),
        ("ServiceAccount", CREATED),
        ("RoleBinding", CREATED),
        ("ResourceQuota", CREATED),
        ("LimitRange", CREATED),
        *[("NetworkPolicy", CREATED)] * 6,  # deny, DNS, own cluster, notebook, model service, API server
    ]
    objects = _read_all(kube.admin, ns)
    for obj in objects.values():
        assert obj["metadata"]["labels"][MANAGED_BY_LABEL] == MANAGED_BY
        assert obj["metadata"]["labels"]["occam.io/user"] == username
        managers = {(f["manager"], f["operation"]) for f in obj["metadata"]["managedFields"]}
        assert (FIELD_MANAGER, "Apply") in managers, obj["kind"]
    hard = objects["ResourceQuota"]["spec"]["hard"]
    assert hard == {
        "pods": "3",
        "requests.cpu": "4",
        "requests.memory": "8Gi",
        "limits.cpu": "4",
        "limits.memory": "8Gi",
        "requests.nvidia.com/gpu": "1",
        "requests.ephemeral-storage": "20Gi",
        "limits.ephemeral-storage": "20Gi",
        "requests.storage": "20Gi",
        "persistentvolumeclaims": "4",
        "secrets": "20",
        "configmaps": "20",
        "services": "10",
        "services.nodeports": "0",
        "services.loadbalancers": "0",
    }
    metadata = objects["Namespace"]["metadata"]
    assert metadata["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert metadata["annotations"][USERNAME_ANNOTATION] == username
    _quota_counted(kube, ns)  # the quota controller accepts and counts it
    ports = {p["port"] for rule in objects["NetworkPolicy"]["spec"]["ingress"] for p in rule["ports"]}
    assert ports == {8888}  # the notebook's policy: Jupyter, for the hub and proxy
    names = {p.metadata.name for p in client.NetworkingV1Api(kube.admin).list_namespaced_network_policy(ns).items}
    assert names == {
        "occam-default-deny",
        "occam-dns",
        "occam-cluster",
        "occam-notebook",
        "occam-model-service",
        "occam-api-server",
    }


def _quota_counted(kube: Kube, ns: str) -> None:
    """Wait for the quota controller's first status write, so later resourceVersions are ours to change."""
    from kubernetes import client

    core = client.CoreV1Api(kube.admin)
    wait_until(
        "the quota controller to fill in the quota's status",
        lambda: (core.read_namespaced_resource_quota(RESOURCE_QUOTA, ns).status.used or {}).get("pods") == "0",
    )


def test_prepare_namespace_twice_writes_nothing(kube: Kube, new_user: Callable[[], str]) -> None:
    username = new_user()
    ns = namespace_name(username)
    prepare_namespace(kube.admin, namespace_objects(username, LIMITS, **HUB))
    _quota_counted(kube, ns)
    before = _versions(_read_all(kube.admin, ns))
    applied = prepare_namespace(kube.admin, namespace_objects(username, LIMITS, **HUB))
    assert {a.action for a in applied} == {APPLIED}
    assert _versions(_read_all(kube.admin, ns)) == before


def test_changed_limits_update_the_quota_and_keep_others_labels(kube: Kube, new_user: Callable[[], str]) -> None:
    from kubernetes import client

    username = new_user()
    ns = namespace_name(username)
    core = client.CoreV1Api(kube.admin)
    prepare_namespace(kube.admin, namespace_objects(username, LIMITS, **HUB))
    _quota_counted(kube, ns)
    core.patch_namespace(
        ns, {"metadata": {"labels": {"course": "ml101", "pod-security.kubernetes.io/enforce": "baseline"}}}
    )
    before = _versions(_read_all(kube.admin, ns))

    bigger = CourseLimits(
        max_executors=4, cpu="8", memory="16Gi", gpus=0, executor_max_cpu="2", executor_max_memory="4Gi"
    )
    prepare_namespace(kube.admin, namespace_objects(username, bigger, **HUB))
    after = _read_all(kube.admin, ns)
    changed = {kind for kind, version in _versions(after).items() if version != before[kind]}
    # the Namespace too: the spawner owns its Pod Security labels, and took "enforce" back
    assert changed == {"ResourceQuota", "Namespace"}
    hard = after["ResourceQuota"]["spec"]["hard"]
    assert {key: hard[key] for key in ("pods", "requests.cpu", "requests.memory", "limits.cpu", "limits.memory")} == {
        "pods": "5",
        "requests.cpu": "8",
        "requests.memory": "16Gi",
        "limits.cpu": "8",
        "limits.memory": "16Gi",
    }
    assert hard["requests.nvidia.com/gpu"] == "0"

    # a new per-executor maximum reaches the LimitRange; the admin's own namespace label stays
    smaller = CourseLimits(
        max_executors=4, cpu="8", memory="16Gi", gpus=0, executor_max_cpu="1500m", executor_max_memory="3Gi"
    )
    prepare_namespace(kube.admin, namespace_objects(username, smaller, **HUB))
    (item,) = _read_all(kube.admin, ns)["LimitRange"]["spec"]["limits"]
    assert item["max"] == {"cpu": "1500m", "memory": "3Gi", "ephemeral-storage": "4Gi"}
    labels = core.read_namespace(ns).metadata.labels
    assert labels["course"] == "ml101"
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert labels[MANAGED_BY_LABEL] == MANAGED_BY


def test_a_field_edited_by_hand_is_reset_by_the_next_apply(kube: Kube, new_user: Callable[[], str]) -> None:
    from kubernetes import client

    username = new_user()
    ns = namespace_name(username)
    core = client.CoreV1Api(kube.admin)
    networking = client.NetworkingV1Api(kube.admin)
    prepare_namespace(kube.admin, namespace_objects(username, LIMITS, **HUB))
    # An admin raises the quota and opens the notebook's policy with kubectl (another field manager).
    core.patch_namespaced_resource_quota(RESOURCE_QUOTA, ns, {"spec": {"hard": {"pods": "100"}}})
    networking.patch_namespaced_network_policy(NETWORK_POLICY, ns, {"spec": {"ingress": [{}]}})
    assert core.read_namespaced_resource_quota(RESOURCE_QUOTA, ns).spec.hard["pods"] == "100"

    prepare_namespace(kube.admin, namespace_objects(username, LIMITS, **HUB))
    objects = _read_all(kube.admin, ns)
    assert objects["ResourceQuota"]["spec"]["hard"]["pods"] == "3"
    wanted = namespace_objects(username, LIMITS, **HUB)
    (policy,) = [o for o in wanted if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == NETWORK_POLICY]
    assert len(objects["NetworkPolicy"]["spec"]["ingress"]) == len(policy["spec"]["ingress"])
    assert {} not in objects["NetworkPolicy"]["spec"]["ingress"]


def test_a_field_the_builders_no_longer_set_is_removed(kube: Kube, new_user: Callable[[], str]) -> None:
    username = new_user()
    ns = namespace_name(username)
    # What an older spawner applied: one more resource in the quota.
    older = copy.deepcopy(namespace_objects(username, LIMITS, **HUB))
    (quota,) = [obj for obj in older if obj["kind"] == "ResourceQuota"]
    quota["spec"]["hard"]["count/secrets"] = "10"
    prepare_namespace(kube.admin, older)
    assert _read_all(kube.admin, ns)["ResourceQuota"]["spec"]["hard"]["count/secrets"] == "10"

    prepare_namespace(kube.admin, namespace_objects(username, LIMITS, **HUB))
    assert "count/secrets" not in _read_all(kube.admin, ns)["ResourceQuota"]["spec"]["hard"]


def test_the_hub_s_own_account_may_apply_everything(kube: Kube, new_user: Callable[[], str], tmp_path: Path) -> None:
    from kubernetes import config

    from tests.hub.hubprocess import hub_account_kubeconfig

    hub = config.new_client_from_config(str(hub_account_kubeconfig(kube.admin, tmp_path / "hub.kubeconfig")))
    try:
        username = new_user()
        ns = namespace_name(username)
        hub_user = own_username(hub)
        assert hub_user == "system:serviceaccount:occam-hub:hub"
        applied = prepare_namespace(hub, namespace_objects(username, LIMITS, **HUB, hub_user=hub_user))
        assert [a.action for a in applied] == [CREATED] * len(applied)
        _quota_counted(kube, ns)
        before = _versions(_read_all(kube.admin, ns))
        again = prepare_namespace(hub, namespace_objects(username, LIMITS, **HUB, hub_user=hub_user))
        assert {a.action for a in again} == {APPLIED}
        assert _versions(_read_all(kube.admin, ns)) == before
    finally:
        hub.close()


def test_the_hub_s_own_account_reaches_into_occam_s_namespaces_only(
    kube: Kube, new_user: Callable[[], str], tmp_path: Path
) -> None:
    """The hub binds the notebook's rules without holding them, and gets Secrets and pod creation only where it
    bound itself: never in kube-system, nor by binding itself there (the chart's hub-scope admission policy)."""
    from kubernetes import client, config

    from spawner.admission_policy import hub_binding, hub_policy
    from tests.hub.hubprocess import hub_account_kubeconfig

    hub = config.new_client_from_config(str(hub_account_kubeconfig(kube.admin, tmp_path / "hub.kubeconfig")))
    admission = client.AdmissionregistrationV1Api(kube.admin)
    policy = hub_policy("system:serviceaccount:occam-hub:hub", name=f"test-hub-scope-{uuid.uuid4().hex[:6]}")
    admission.create_validating_admission_policy(policy)
    admission.create_validating_admission_policy_binding(hub_binding(policy))
    try:
        username = new_user()
        ns = namespace_name(username)
        prepare_namespace(hub, namespace_objects(username, LIMITS, **HUB, hub_user=own_username(hub)))
        wait_until_allowed(hub, ns, "create", "pods")
        core = client.CoreV1Api(hub)
        pod = {"metadata": {"name": "jupyter-x"}, "spec": restricted_pod_spec({"name": "c", "image": "pause"})}
        wait_until(f"the quota of {ns} to be counted", lambda: core.create_namespaced_pod(ns, pod, dry_run="All"))
        core.delete_collection_namespaced_secret(ns, label_selector="app.kubernetes.io/name=occam")

        refusals = {
            "read a Secret in kube-system": lambda: core.list_namespaced_secret("kube-system"),
            "read a Secret in the student's namespace": lambda: core.list_namespaced_secret(ns),
            "create a pod in kube-system": lambda: core.create_namespaced_pod("kube-system", pod, dry_run="All"),
            "delete kube-system's Secrets": lambda: core.delete_collection_namespaced_secret("kube-system"),
        }
        for what, attempt in refusals.items():
            with pytest.raises(client.ApiException) as refused:
                attempt()
            assert refused.value.status == 403, what

        own = {
            "metadata": {"name": "escape"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": HUB_NAMESPACE_ROLE},
            "subjects": [{"kind": "User", "name": "system:serviceaccount:occam-hub:hub"}],
        }
        rbac = client.RbacAuthorizationV1Api(hub)

        def bind_in_kube_system_refused() -> bool:
            try:
                rbac.create_namespaced_role_binding("kube-system", own, dry_run="All")
            except client.ApiException as exc:
                return exc.status == 403 and "only in namespaces Occam's spawner made" in exc.body
            return False  # admitted (a dry run stores nothing): the policy is not in force yet

        wait_until("the hub-scope policy to refuse a RoleBinding in kube-system", bind_in_kube_system_refused)
        with pytest.raises(client.ApiException) as refused:
            client.CoreV1Api(hub).patch_namespace("kube-system", {"metadata": {"labels": {"x": "y"}}})
        assert refused.value.status == 403
    finally:
        hub.close()
        admission.delete_validating_admission_policy_binding(policy["metadata"]["name"])
        admission.delete_validating_admission_policy(policy["metadata"]["name"])


def test_the_notebook_account_may_start_pods_in_its_namespace_only(kube: Kube, new_user: Callable[[], str]) -> None:
    from kubernetes import client

    username, other = new_user(), new_user()
    ns, other_ns = namespace_name(username), namespace_name(other)
    prepare_namespace(kube.admin, namespace_objects(username, LIMITS, **HUB))
    prepare_namespace(kube.admin, namespace_objects(other, LIMITS, **HUB))
    admin_core = client.CoreV1Api(kube.admin)
    for namespace in (ns, other_ns):
        wait_until(
            f"the ServiceAccount 'default' in namespace {namespace}",
            lambda namespace=namespace: admin_core.read_namespaced_service_account("default", namespace),
        )

    notebook = _notebook_client(kube, ns)
    try:
        core = client.CoreV1Api(notebook)
        pod = {
            "metadata": {"name": "executor-1", "labels": {"app.kubernetes.io/name": "occam"}},
            "spec": restricted_pod_spec({"name": "executor", "image": PAUSE}),
        }
        created = core.create_namespaced_pod(ns, pod)
        # the LimitRange filled in requests and limits, so the quota could count the pod
        resources = created.spec.containers[0].resources
        assert resources.requests == {"cpu": "1", "memory": "1Gi", "ephemeral-storage": "4Gi"}
        assert resources.limits == {"cpu": "1", "memory": "1Gi", "ephemeral-storage": "4Gi"}
        assert [p.metadata.name for p in core.list_namespaced_pod(ns).items] == ["executor-1"]
        core.list_namespaced_resource_quota(ns)
        core.list_namespaced_limit_range(ns)
        core.list_namespaced_event(ns)
        core.create_namespaced_secret(ns, {"metadata": {"name": "s", "labels": {"app.kubernetes.io/name": "occam"}}})
        core.delete_collection_namespaced_secret(ns, label_selector="app.kubernetes.io/name=occam")
        core.delete_collection_namespaced_pod(ns, label_selector="app.kubernetes.io/name=occam")

        too_big = {
            "metadata": {"name": "too-big"},
            "spec": restricted_pod_spec(
                {"name": "executor", "image": PAUSE, "resources": {"limits": {"cpu": "3", "memory": "1Gi"}}}
            ),
        }
        with pytest.raises(client.ApiException) as refused:
            core.create_namespaced_pod(ns, too_big)
        assert refused.value.status == 403 and "maximum cpu usage per Container is 2" in refused.value.body

        for forbidden in (
            lambda: core.create_namespaced_pod(other_ns, pod),
            lambda: core.list_namespaced_pod(other_ns),
            lambda: core.list_node(),
            lambda: core.list_namespace(),
            lambda: core.patch_namespaced_resource_quota(RESOURCE_QUOTA, ns, {"spec": {"hard": {"pods": "100"}}}),
            lambda: client.RbacAuthorizationV1Api(notebook).create_namespaced_role(
                ns, {"metadata": {"name": "more"}, "rules": []}
            ),
        ):
            with pytest.raises(client.ApiException) as denied:
                forbidden()
            assert denied.value.status == 403, denied.value.body
    finally:
        notebook.close()


def test_a_refused_spawner_gets_a_message_saying_what_it_needs(kube: Kube, new_user: Callable[[], str]) -> None:
    username = new_user()
    prepare_namespace(kube.admin, namespace_objects(username, LIMITS, **HUB))
    notebook = _notebook_client(kube, namespace_name(username))
    try:
        with pytest.raises(ConfigError, match=r"refused to let the spawner read namespace .*403.*ClusterRole"):
            prepare_namespace(notebook, namespace_objects(new_user(), LIMITS, **HUB))
    finally:
        notebook.close()


def test_an_unreachable_api_server_is_a_config_error() -> None:
    from kubernetes import client

    conf = client.Configuration()
    conf.host = "https://127.0.0.1:9"  # discard: nothing listens
    conf.retries = 0
    api_client = client.ApiClient(conf)
    try:
        with pytest.raises(
            ConfigError, match=r"cannot reach the Kubernetes API at https://127.0.0.1:9 to read namespace"
        ):
            prepare_namespace(api_client, namespace_objects("ada", LIMITS, **HUB), timeout=2)
    finally:
        api_client.close()


def test_a_namespace_that_is_not_the_student_s_is_not_taken_over(kube: Kube, new_user: Callable[[], str]) -> None:
    from kubernetes import client

    core = client.CoreV1Api(kube.admin)
    # an admin's own namespace that happens to have the student's namespace name
    username = new_user()
    ns = namespace_name(username)
    core.create_namespace({"metadata": {"name": ns, "labels": {"team": "research"}}})
    with pytest.raises(ConfigError, match=f"namespace {ns} already exists and Occam did not make it"):
        prepare_namespace(kube.admin, namespace_objects(username, LIMITS, **HUB))
    assert core.read_namespace(ns).metadata.labels == {"team": "research", "kubernetes.io/metadata.name": ns}
    assert core.list_namespaced_resource_quota(ns).items == []

    # another student's Occam namespace, under this student's namespace name
    other = new_user()
    made = namespace_objects(other, LIMITS, **HUB)[0]
    intruder = new_user()
    made["metadata"]["name"] = namespace_name(intruder)
    core.create_namespace(made)
    with pytest.raises(ConfigError, match=f"belongs to user {other!r}"):
        prepare_namespace(kube.admin, namespace_objects(intruder, LIMITS, **HUB))
    assert core.read_namespace(namespace_name(intruder)).metadata.annotations[USERNAME_ANNOTATION] == other


def test_the_notebooks_stop_selector_spares_batch_jobs_on_the_real_api_server(admin: Any, namespace: Any) -> None:
    """The API server's own label-selector semantics: executors of the notebook go, a batch job's pods and
    model services (a kept one outlives the notebook) stay."""
    from occam.contract import BATCH_JOB_LABEL
    from spawner.spawner import EXECUTOR_SELECTOR

    def pod(name: str, component: str, batch: bool) -> dict[str, Any]:
        labels = {"app.kubernetes.io/name": "occam", "app.kubernetes.io/component": component}
        if batch:
            labels[BATCH_JOB_LABEL] = "true"
        spec = restricted_pod_spec({"name": "c", "image": "registry.k8s.io/pause:3.10"})
        return {"metadata": {"name": name, "labels": labels}, "spec": spec}

    for name, component, batch in [
        ("nb-exec", "executor", False),
        ("job-driver", "driver", True),
        ("job-exec", "executor", True),
        ("notebook", "notebook", False),
        ("model-service", "model-service", False),
    ]:
        admin.create_namespaced_pod(namespace.name, pod(name, component, batch))
    selected = admin.list_namespaced_pod(namespace.name, label_selector=EXECUTOR_SELECTOR).items
    assert sorted(p.metadata.name for p in selected) == ["nb-exec"]


def test_the_hub_makes_each_student_s_own_work_claim_counted_by_the_quota(
    kube: Kube, new_user: Callable[[], str], tmp_path: Path
) -> None:
    """The claim is made with the hub's own account once its in-namespace binding is in force, as the spawner
    does; no provisioner runs here, so it stays Pending, but the quota counts its size."""
    from kubernetes import client, config

    from spawner.namespace import labels
    from spawner.work_volume import WORK_CLAIM, work_claim
    from tests.hub.hubprocess import hub_account_kubeconfig

    hub = config.new_client_from_config(str(hub_account_kubeconfig(kube.admin, tmp_path / "hub.kubeconfig")))
    try:
        username = new_user()
        ns = namespace_name(username)
        prepare_namespace(hub, namespace_objects(username, LIMITS, **HUB, hub_user=own_username(hub)))
        wait_until_allowed(hub, ns, "create", "pods")
        _quota_counted(kube, ns)
        claim = work_claim(ns, labels(username), "occam-test-rwx", "3Gi")
        assert [a.action for a in prepare_namespace(hub, [claim])] == [CREATED]
        made = client.CoreV1Api(kube.admin).read_namespaced_persistent_volume_claim(WORK_CLAIM, ns)
        assert made.spec.access_modes == ["ReadWriteMany"] and made.spec.storage_class_name == "occam-test-rwx"
        wait_until(
            "the quota to count the claim",
            lambda: client.CoreV1Api(kube.admin)
            .read_namespaced_resource_quota(RESOURCE_QUOTA, ns)
            .status.used.get("requests.storage")
            == "3Gi",
        )
        assert [a.action for a in prepare_namespace(hub, [claim])] == [APPLIED]  # the next spawn changes nothing
    finally:
        hub.close()
