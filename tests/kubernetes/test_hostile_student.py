"""A hostile student against the real API server: every way out of the namespace is refused by the cluster.

The namespace is what OccamSpawner makes (:func:`spawner.namespace.namespace_objects`, applied by
:func:`spawner.apply.prepare_namespace`): Pod Security ``restricted``, the course's ResourceQuota and
LimitRange, the notebook's Role; the chart's ValidatingAdmissionPolicies
(:func:`spawner.admission_policy.admission_objects`) are installed as the chart installs them. The student
is the notebook's own ServiceAccount, with a token from the TokenRequest API, calling the API server
with the plain Kubernetes client: no Occam code runs between the attempt and the refusal, so each
refusal is the cluster's (RBAC, Pod Security admission, the admission policies, LimitRanger, quota).

Each attempt is one test; each must come back refused (403 or 422) with the layer's own words, and the
object must not exist. The tally of attempts and refusals is printed at the end of the module.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from occam.kubernetes import job_objects, objects
from occam.kubernetes.settings import KubernetesSettings
from occam.spec import make_spec
from spawner.admission_policy import admission_objects
from spawner.apply import prepare_namespace
from spawner.limits import CourseLimits
from spawner.namespace import RESOURCE_QUOTA, SERVICE_ACCOUNT, namespace_name, namespace_objects

from .fixtures import Kube
from .pki import write_kubeconfig
from .student import Tally, report_tally, restricted_pod_spec, wait_until

PAUSE = "registry.k8s.io/pause:3.10"
#: Small counts, so that the floods are short.
LIMITS = CourseLimits(
    max_executors=2,
    cpu="4",
    memory="8Gi",
    ephemeral_storage="6Gi",
    executor_max_ephemeral_storage="2Gi",
    storage="2Gi",
    secrets=4,
    configmaps=3,
    services=2,
    persistent_volume_claims=2,
)
HUB = {"hub_namespace": "jhub", "hub_selector": {"app": "jupyterhub"}}
#: A PriorityClass an admin made (and did not allow students): a student's pods must not preempt others'.
HIGH_PRIORITY = f"occam-test-high-{uuid.uuid4().hex[:6]}"


TALLY = Tally()


@dataclass(frozen=True)
class Student:
    namespace: str
    core: Any  # CoreV1Api with the notebook account's token
    rbac: Any  # RbacAuthorizationV1Api with the same token
    admission: Any  # AdmissionregistrationV1Api with the same token
    policies: tuple[str, ...]  # names of the ValidatingAdmissionPolicies installed for the module


def _create_all(admin: Any, items: list[dict[str, Any]]) -> None:
    from kubernetes import client

    api = client.AdmissionregistrationV1Api(admin)
    for item in items:
        create = {
            "ValidatingAdmissionPolicy": api.create_validating_admission_policy,
            "ValidatingAdmissionPolicyBinding": api.create_validating_admission_policy_binding,
        }[item["kind"]]
        create(item)


@pytest.fixture(scope="module")
def policies(kube: Kube, request: pytest.FixtureRequest) -> Iterator[list[dict[str, Any]]]:
    """The chart's admission policies (uniquely named) and an admin's high PriorityClass, removed afterwards."""
    from kubernetes import client

    installed = admission_objects(prefix=f"t{uuid.uuid4().hex[:6]}-")
    scheduling = client.SchedulingV1Api(kube.admin)
    api = client.AdmissionregistrationV1Api(kube.admin)
    try:
        _create_all(kube.admin, installed)
        scheduling.create_priority_class({"metadata": {"name": HIGH_PRIORITY}, "value": 1000000})
        yield installed
    finally:
        for item in reversed(installed):
            delete = (
                api.delete_validating_admission_policy
                if item["kind"] == "ValidatingAdmissionPolicy"
                else api.delete_validating_admission_policy_binding
            )
            try:
                delete(item["metadata"]["name"])
            except client.ApiException as exc:
                if exc.status != 404:
                    raise
        try:
            scheduling.delete_priority_class(HIGH_PRIORITY)
        except client.ApiException as exc:
            if exc.status != 404:
                raise
        report_tally(request, TALLY, "hostile student")


@pytest.fixture(scope="module")
def student(kube: Kube, policies: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Student]:
    """The spawner's namespace for a fresh user, with the policies in force, and the student's clients."""
    from kubernetes import client

    admin = kube.admin
    core = client.CoreV1Api(admin)
    username = f"Hostile.{uuid.uuid4().hex[:8]}"
    ns = namespace_name(username)
    prepare_namespace(admin, namespace_objects(username, LIMITS, **HUB))
    try:
        yield from _student_in(kube, policies, ns, tmp_path_factory)
    finally:
        core.delete_namespace(ns)


def _student_in(
    kube: Kube, policies: list[dict[str, Any]], ns: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Student]:
    """Wait until namespace ``ns`` can be used and the policies are in force; yield the student's clients."""
    from kubernetes import client, config

    admin = kube.admin
    core = client.CoreV1Api(admin)
    wait_until(f"the ServiceAccount 'default' in {ns}", lambda: core.read_namespaced_service_account("default", ns))
    # Quota admission refuses everything until the quota controller has counted the namespace once.
    wait_until(
        "the quota controller to count the namespace",
        lambda: "configmaps" in (core.read_namespaced_resource_quota(RESOURCE_QUOTA, ns).status.used or {}),
    )
    # The API server picks new policies up asynchronously: wait until one refuses (an admin's dry run).
    pinned = {"metadata": {"name": "probe"}, "spec": restricted_pod_spec({"name": "c", "image": PAUSE}, nodeName="x")}

    def policy_refuses() -> bool:
        try:
            core.create_namespaced_pod(ns, pinned, dry_run="All")
        except client.ApiException as exc:
            return "may not name a node" in exc.body
        return False  # admitted (a dry run stores nothing): not in force yet

    wait_until("the admission policies to be in force", policy_refuses)
    token = core.create_namespaced_service_account_token(
        SERVICE_ACCOUNT, ns, {"spec": {"expirationSeconds": 3600}}
    ).status.token
    configuration = admin.configuration
    ca_pem = Path(configuration.ssl_ca_cert).read_bytes() if configuration.ssl_ca_cert else None
    path = write_kubeconfig(
        tmp_path_factory.mktemp("hostile") / "student.kubeconfig", configuration.host, ca_pem, {"token": token}
    )
    api_client = config.new_client_from_config(str(path))
    try:
        yield Student(
            ns,
            client.CoreV1Api(api_client),
            client.RbacAuthorizationV1Api(api_client),
            client.AdmissionregistrationV1Api(api_client),
            tuple(i["metadata"]["name"] for i in policies if i["kind"] == "ValidatingAdmissionPolicy"),
        )
    finally:
        api_client.close()


def _pod(name: str, *, container: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    """A pod that meets ``restricted``, with ``container`` merged into its container and ``fields`` into its spec."""
    base = {"name": "c", "image": PAUSE, "resources": {"limits": {"cpu": "100m", "memory": "64Mi"}}}
    spec = restricted_pod_spec(base)
    for key, value in (container or {}).items():
        if key == "securityContext":
            spec["containers"][0]["securityContext"].update(value)
        else:
            spec["containers"][0][key] = value
    for key, value in fields.items():
        if key == "securityContext":
            spec["securityContext"].update(value)
        else:
            spec[key] = value
    return {"metadata": {"name": name, "labels": {"app.kubernetes.io/name": "occam"}}, "spec": spec}


def _service(name: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"ports": [{"port": 80}], "selector": {"a": "b"}, **spec}}


def _pod_attempt(**kwargs: Any) -> Callable[[Student], Any]:
    def attempt(s: Student) -> Any:
        return s.core.create_namespaced_pod(s.namespace, _pod("hostile", **kwargs))

    return attempt


def _service_attempt(**spec: Any) -> Callable[[Student], Any]:
    def attempt(s: Student) -> Any:
        return s.core.create_namespaced_service(s.namespace, _service("hostile", **spec))

    return attempt


def _flood(kind: str, make: Callable[[Student, int], Any], limit: int) -> Callable[[Student], Any]:
    """Create ``kind`` objects until the cluster refuses one; the refusal must come when the namespace's quota
    is full: after (hard - existing) creates, or one more (see below), counted once the quota agrees with what
    exists (it counts a create at once, a delete only when its controller catches up). The quota is the
    course's ``limit``."""

    def attempt(s: Student) -> Any:
        from kubernetes import client

        listing = {
            "secrets": s.core.list_namespaced_secret,
            "configmaps": s.core.list_namespaced_config_map,
            "persistentvolumeclaims": s.core.list_namespaced_persistent_volume_claim,
        }[kind]

        def room() -> tuple[int] | None:
            status = s.core.read_namespaced_resource_quota(RESOURCE_QUOTA, s.namespace).status
            assert int(status.hard[kind]) == limit, (kind, status.hard)
            used, existing = int((status.used or {}).get(kind, "0")), len(listing(s.namespace).items)
            return (int(status.hard[kind]) - existing,) if used == existing else None

        (allowed,) = wait_until(f"the quota's count of {kind} to agree with what exists", room, timeout=60)
        for index in range(allowed + 5):
            try:
                make(s, index)
            except client.ApiException:
                # Quota admission counts against the quota's cached status, which its controller recomputes
                # from its own informer: a recount racing a create can lose that create (seen once in a full
                # CI run: refused after 5 of 4). So: refused at the limit, or one past it, never later.
                assert (
                    allowed <= index <= allowed + 1
                ), f"{kind}: refused after {index}, the quota had room for {allowed}"
                raise
        return f"{allowed + 5} {kind} created"

    return attempt


def _secret(s: Student, index: int) -> Any:
    return s.core.create_namespaced_secret(s.namespace, {"metadata": {"name": f"flood-{index}"}, "data": {}})


def _configmap(s: Student, index: int) -> Any:
    return s.core.create_namespaced_config_map(s.namespace, {"metadata": {"name": f"flood-{index}"}})


def _claim(s: Student, index: int, size: str = "100Mi") -> Any:
    body = {
        "metadata": {"name": f"flood-{index}"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}},
    }
    return s.core.create_namespaced_persistent_volume_claim(s.namespace, body)


def _ephemeral_container(s: Student) -> Any:
    """Add a privileged debug container to a running pod of its own (``kubectl debug``'s way in)."""
    s.core.create_namespaced_pod(s.namespace, _pod("target"))
    try:
        debug = {"name": "debug", "image": PAUSE, "securityContext": {"privileged": True}}
        return s.core.patch_namespaced_pod_ephemeralcontainers(
            "target", s.namespace, {"spec": {"ephemeralContainers": [debug]}}
        )
    finally:
        s.core.delete_namespaced_pod("target", s.namespace, grace_period_seconds=0)


def _service_made_node_port(s: Student) -> Any:
    """Create a ClusterIP Service, then change it to a NodePort (the policy checks updates too)."""
    s.core.create_namespaced_service(s.namespace, _service("target"))
    try:
        return s.core.patch_namespaced_service("target", s.namespace, {"spec": {"type": "NodePort"}})
    finally:
        s.core.delete_namespaced_service("target", s.namespace)


PSA = 'violates PodSecurity "restricted:v1.34"'
POLICY = "ValidatingAdmissionPolicy"
QUOTA = "exceeded quota"
RBAC = "cannot"

#: name -> (the attempt, words of the refusal that name the layer that refused)
ATTEMPTS: dict[str, tuple[Callable[[Student], Any], tuple[str, ...]]] = {
    # with allowPrivilegeEscalation, or the API server's validation refuses the contradiction first
    "privileged container": (
        _pod_attempt(container={"securityContext": {"privileged": True, "allowPrivilegeEscalation": True}}),
        (PSA, "privileged"),
    ),
    "hostPID": (_pod_attempt(hostPID=True), (PSA, "host namespaces")),
    "hostIPC": (_pod_attempt(hostIPC=True), (PSA, "host namespaces")),
    "hostNetwork": (_pod_attempt(hostNetwork=True), (PSA, "host namespaces")),
    "hostPort": (_pod_attempt(container={"ports": [{"containerPort": 22, "hostPort": 22}]}), (PSA, "hostPort")),
    "hostPath /": (
        _pod_attempt(
            volumes=[{"name": "root", "hostPath": {"path": "/"}}],
            container={"volumeMounts": [{"name": "root", "mountPath": "/host"}]},
        ),
        (PSA, "hostPath"),
    ),
    "add SYS_ADMIN": (
        _pod_attempt(container={"securityContext": {"capabilities": {"add": ["SYS_ADMIN"], "drop": ["ALL"]}}}),
        (PSA, "SYS_ADMIN"),
    ),
    "add NET_RAW": (
        _pod_attempt(container={"securityContext": {"capabilities": {"add": ["NET_RAW"], "drop": ["ALL"]}}}),
        (PSA, "NET_RAW"),
    ),
    "keep every capability": (_pod_attempt(container={"securityContext": {"capabilities": {}}}), (PSA, "ALL")),
    "runAsUser 0": (_pod_attempt(securityContext={"runAsUser": 0}), (PSA, "runAsUser=0")),
    "runAsNonRoot false": (
        _pod_attempt(securityContext={"runAsNonRoot": False}, container={"securityContext": {"runAsNonRoot": False}}),
        (PSA, "runAsNonRoot"),
    ),
    "privilege escalation": (
        _pod_attempt(container={"securityContext": {"allowPrivilegeEscalation": True}}),
        (PSA, "allowPrivilegeEscalation"),
    ),
    "seccomp Unconfined": (
        _pod_attempt(securityContext={"seccompProfile": {"type": "Unconfined"}}),
        (PSA, "seccompProfile"),
    ),
    "nodeName pinning": (_pod_attempt(nodeName="gpu-0"), (POLICY, "may not name a node")),
    "high priority class": (_pod_attempt(priorityClassName=HIGH_PRIORITY), (POLICY, "priority class")),
    "ephemeral storage beyond the per-container limit": (
        _pod_attempt(
            container={"resources": {"limits": {"cpu": "100m", "memory": "64Mi", "ephemeral-storage": "100Gi"}}}
        ),
        ("maximum ephemeral-storage usage per Container is 2Gi",),
    ),
    "NodePort Service": (_service_attempt(type="NodePort"), (POLICY, "must be ClusterIP")),
    "LoadBalancer Service": (_service_attempt(type="LoadBalancer"), (POLICY, "must be ClusterIP")),
    "ExternalName Service": (
        _service_attempt(type="ExternalName", externalName="kubernetes.default.svc.cluster.local", selector=None),
        (POLICY, "ClusterIP"),
    ),
    "Service with externalIPs": (_service_attempt(externalIPs=["10.0.0.1"]), (POLICY, "externalIPs")),
    "a ClusterIP Service changed to NodePort": (_service_made_node_port, (POLICY, "must be ClusterIP")),
    "a privileged ephemeral container": (_ephemeral_container, (RBAC, "pods/ephemeralcontainers")),
    "Secret flood": (_flood("secrets", _secret, LIMITS.secrets), (QUOTA, "secrets")),
    # kube-root-ca.crt, which Kubernetes puts in every namespace, counts among them (the quota sees it)
    "ConfigMap flood": (_flood("configmaps", _configmap, LIMITS.configmaps), (QUOTA, "configmaps")),
    "PersistentVolumeClaim flood": (
        _flood("persistentvolumeclaims", _claim, LIMITS.persistent_volume_claims),
        (QUOTA, "persistentvolumeclaims"),
    ),
    "one claim beyond the storage total": (lambda s: _claim(s, 99, "100Gi"), (QUOTA, "requests.storage")),
    "a pod in another namespace": (
        lambda s: s.core.create_namespaced_pod("kube-system", _pod("hostile")),
        (RBAC, "kube-system"),
    ),
    "read Secrets in another namespace": (lambda s: s.core.list_namespaced_secret("kube-system"), (RBAC,)),
    "relabel its namespace to drop Pod Security": (
        lambda s: s.core.patch_namespace(
            s.namespace, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "privileged"}}}
        ),
        (RBAC, "namespaces"),
    ),
    "raise its own quota": (
        lambda s: s.core.patch_namespaced_resource_quota(
            RESOURCE_QUOTA, s.namespace, {"spec": {"hard": {"secrets": "1000"}}}
        ),
        (RBAC, "resourcequotas"),
    ),
    "bind itself to cluster-admin": (
        lambda s: s.rbac.create_namespaced_role_binding(
            s.namespace,
            {
                "metadata": {"name": "hostile"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
                "subjects": [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": s.namespace}],
            },
        ),
        (RBAC, "rolebindings"),
    ),
    "delete the admission policies": (
        lambda s: s.admission.delete_collection_validating_admission_policy(),
        (RBAC, "validatingadmissionpolicies"),
    ),
}


def test_the_policies_type_check_against_the_api_server_s_schemas(kube: Kube, student: Student) -> None:
    # The API server checks each CEL expression against the Pod and Service schemas and reports what does
    # not fit (a misspelt field) in the policy's status, where it would otherwise go unnoticed.
    from kubernetes import client

    api = client.AdmissionregistrationV1Api(kube.admin)
    for name in student.policies:

        def type_checked(name: str = name) -> Any:
            status = api.read_validating_admission_policy(name).status
            return status.type_checking if status is not None else None

        checked = wait_until(f"the API server to type-check policy {name}", type_checked)
        assert not checked.expression_warnings, (name, checked.expression_warnings)


def test_a_pod_that_meets_the_policies_is_admitted(student: Student) -> None:
    # The control: the attempts below differ from this pod in one field each.
    created = student.core.create_namespaced_pod(student.namespace, _pod("compliant"))
    assert created.spec.containers[0].resources.limits["ephemeral-storage"] == "2Gi"  # the LimitRange's default
    student.core.delete_namespaced_pod("compliant", student.namespace, grace_period_seconds=0)
    made = student.core.create_namespaced_service(student.namespace, _service("compliant"))
    assert made.spec.type == "ClusterIP"
    student.core.delete_namespaced_service("compliant", student.namespace)


def test_occam_s_own_executor_and_batch_driver_pods_are_admitted(student: Student) -> None:
    # What Spark creates from Occam's templates, with the notebook's token, passes every policy and the
    # quota: the LimitRange gives them the ephemeral storage the quota counts.
    settings = KubernetesSettings(
        namespace=student.namespace, pod_name="jupyter-ada", pod_ip="10.244.0.9", executor_image=PAUSE, user="ada"
    )
    spec = make_spec(1, cores=1, memory="512m", gpu=False, timeout=60, name="occam-ok")
    executor = objects.executor_pod_template(spec, settings)
    executor["metadata"]["name"] = "occam-ok-exec-1"
    driver = job_objects.driver_pod_template(spec, settings, service_account=SERVICE_ACCOUNT)
    driver["metadata"]["name"] = "occam-ok-driver"
    for pod in (executor, driver):
        created = student.core.create_namespaced_pod(student.namespace, pod)
        resources = created.spec.containers[0].resources
        assert resources.requests["ephemeral-storage"] == resources.limits["ephemeral-storage"] == "2Gi"
    for pod in (executor, driver):
        student.core.delete_namespaced_pod(pod["metadata"]["name"], student.namespace, grace_period_seconds=0)


@pytest.mark.parametrize("name", list(ATTEMPTS))
def test_the_cluster_refuses(student: Student, name: str) -> None:
    from kubernetes import client

    attempt, words = ATTEMPTS[name]
    TALLY.attempts.append(name)
    with pytest.raises(client.ApiException) as refused:
        attempt(student)
    assert refused.value.status in (403, 422), refused.value
    try:
        body = json.loads(refused.value.body)["message"]
    except (TypeError, ValueError, KeyError):
        body = str(refused.value.body)
    missing = [word for word in words if word not in body]
    assert not missing, f"{name}: refused, but not for the expected reason ({missing} not in {body})"
    TALLY.refused.append(name)
    for pod in student.core.list_namespaced_pod(student.namespace).items:
        assert pod.metadata.name != "hostile", f"{name}: the pod exists"


def test_every_attempt_was_refused() -> None:
    assert TALLY.attempts, "run with the attempts above"
    assert TALLY.refused == TALLY.attempts, sorted(set(TALLY.attempts) - set(TALLY.refused))
