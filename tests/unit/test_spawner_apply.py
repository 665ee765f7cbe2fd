"""spawner.apply without a cluster: each object goes to its kind's patch endpoint as a forced server-side apply.

The kubernetes client's typed API classes are replaced by a recorder here; the kubernetes tier
(tests/kubernetes/test_spawner_namespace.py) applies the same objects to a real API server.
"""

from __future__ import annotations

import inspect
import json
import threading
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
from kubernetes import client

from occam.errors import ConfigError
from spawner.apply import (
    APPLIED,
    APPLY_CONCURRENCY,
    APPLY_PATCH,
    CREATED,
    DELETED,
    FIELD_MANAGER,
    PATCH_METHODS,
    Applied,
    apply_phases,
    prepare_namespace,
)
from spawner.limits import CourseLimits
from spawner.namespace import HUB_BOUND_KINDS, namespace_name, namespace_objects
from spawner.work_volume import work_claim

LIMITS = CourseLimits(max_executors=2, cpu="4", memory="8Gi")
HUB = {"hub_namespace": "jhub", "hub_selector": {"app": "jupyterhub"}}


def _objects() -> list[dict[str, Any]]:
    return namespace_objects("ada", LIMITS, **HUB)


PULL_SECRET = {
    "metadata": {"name": "registry", "namespace": "jhub"},
    "type": "kubernetes.io/dockerconfigjson",
    "data": {".dockerconfigjson": "e30="},
}


def test_every_kind_the_builders_make_has_a_patch_method_that_takes_an_apply():
    claim = work_claim(namespace_name("ada"), {}, "nfs-client", "10Gi")
    objects = [*namespace_objects("ada", LIMITS, **HUB, pull_secrets=[PULL_SECRET]), claim]
    assert {obj["kind"] for obj in objects} == set(PATCH_METHODS)
    for api_class, method in PATCH_METHODS.values():
        parameters = inspect.signature(getattr(getattr(client, api_class), f"{method}_with_http_info")).parameters
        assert {"field_manager", "force", "_content_type", "_request_timeout"} <= set(parameters), method


class RawResponse:
    """What a typed call returns without preloaded content (a urllib3 response): its status and body."""

    def __init__(self, status: int, body: Any) -> None:
        self.status, self.data, self.released = status, json.dumps(body).encode(), False

    def release_conn(self) -> None:
        self.released = True


class Recorder:
    """Stands in for CoreV1Api, RbacAuthorizationV1Api and NetworkingV1Api: records every patch."""

    calls: ClassVar[list[tuple[str, tuple[Any, ...], dict[str, Any]]]] = []
    reads: ClassVar[list[str]] = []  # namespaces read before applying
    deletes: ClassVar[list[tuple[Any, ...]]] = []  # (name, namespace) of NetworkPolicies deleted
    existing: ClassVar[dict[str, dict[str, Any]]] = {}  # kind/name -> the object the fake cluster holds
    phase = "Active"

    def __init__(self, api_client: Any) -> None:
        self.api_client = api_client

    def __getattr__(self, method: str) -> Any:
        def patch(*args: Any, **kwargs: Any) -> Any:
            if method == "read_namespace":
                Recorder.reads.append(args[0])
                if f"Namespace/{args[0]}" not in Recorder.existing:
                    raise client.ApiException(status=404, reason="Not Found")
                return RawResponse(200, Recorder.existing[f"Namespace/{args[0]}"])
            if method == "delete_namespaced_network_policy":
                Recorder.deletes.append(args[:2])
                if Recorder.existing.pop(f"NetworkPolicy/{args[0]}", None) is None:
                    raise client.ApiException(status=404, reason="Not Found")
                return RawResponse(200, {})
            Recorder.calls.append((method, args, kwargs))
            name, body = args[0], args[-1]
            created = f"{body['kind']}/{name}" not in Recorder.existing
            Recorder.existing[f"{body['kind']}/{name}"] = body
            data = {**body, "status": {"phase": Recorder.phase}} if body["kind"] == "Namespace" else body
            return RawResponse(201 if created else 200, data)

        return patch


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> type[Recorder]:
    for api_class in {api_class for api_class, _ in PATCH_METHODS.values()}:
        monkeypatch.setattr(client, api_class, Recorder)
    Recorder.calls, Recorder.reads, Recorder.existing, Recorder.phase = [], [], {}, "Active"
    Recorder.deletes = []
    return Recorder


def _api_client() -> Any:
    return SimpleNamespace(
        configuration=SimpleNamespace(host="https://k8s.test"), sanitize_for_serialization=lambda obj: obj
    )


def test_each_object_is_applied_forced_under_the_spawner_s_field_manager(recorder: type[Recorder]):
    objects = _objects()
    applied = prepare_namespace(_api_client(), objects, timeout=7)
    assert [a.action for a in applied] == [CREATED] * len(objects)
    assert [(a.kind, a.name) for a in applied] == [(o["kind"], o["metadata"]["name"]) for o in objects]
    ns = namespace_name("ada")
    assert recorder.calls[0][0] == "patch_namespace_with_http_info"  # first and alone; the others at once
    calls = {(args[-1]["kind"], args[0]): (method, args, kwargs) for method, args, kwargs in recorder.calls}
    assert len(calls) == len(recorder.calls) == len(objects)
    for obj in objects:
        method, args, kwargs = calls[obj["kind"], obj["metadata"]["name"]]
        assert method == PATCH_METHODS[obj["kind"]][1] + "_with_http_info"
        name = obj["metadata"]["name"]
        assert args == ((name, obj) if obj["kind"] == "Namespace" else (name, ns, obj))
        assert kwargs == {
            "field_manager": FIELD_MANAGER,
            "force": True,
            "_content_type": APPLY_PATCH,
            "_request_timeout": 7,
            "_preload_content": False,
        }


def test_a_second_apply_reports_applied(recorder: type[Recorder]):
    prepare_namespace(_api_client(), _objects())
    again = prepare_namespace(_api_client(), _objects())
    assert {a.action for a in again} == {APPLIED}
    assert again[0] == Applied("Namespace", namespace_name("ada"), APPLIED)


def test_a_policy_the_settings_no_longer_want_is_deleted_once(recorder: type[Recorder]):
    with_internet = namespace_objects("ada", LIMITS, **HUB, api_server_cidrs=["10.0.0.5/32"], internet=True)
    prepare_namespace(_api_client(), with_internet)
    assert "NetworkPolicy/occam-internet" in recorder.existing
    ns = namespace_name("ada")
    applied = prepare_namespace(
        _api_client(), namespace_objects("ada", LIMITS, **HUB, api_server_cidrs=["10.0.0.5/32"])
    )
    assert applied[-1] == Applied("NetworkPolicy", "occam-internet", DELETED)
    assert recorder.deletes == [("occam-internet", ns)]
    assert "NetworkPolicy/occam-internet" not in recorder.existing
    again = prepare_namespace(_api_client(), namespace_objects("ada", LIMITS, **HUB, api_server_cidrs=["10.0.0.5/32"]))
    assert DELETED not in {a.action for a in again}  # already gone: nothing to report


def test_a_namespace_being_deleted_fails_before_anything_is_made_in_it(recorder: type[Recorder]):
    recorder.phase = "Terminating"
    with pytest.raises(ConfigError, match=r"namespace occam-ada is still being deleted.*try again in a minute"):
        prepare_namespace(_api_client(), _objects())
    assert [method for method, _, _ in recorder.calls] == ["patch_namespace_with_http_info"]


def test_a_refusal_says_what_the_hub_s_role_needs(monkeypatch: pytest.MonkeyPatch):
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise client.ApiException(status=403, reason="Forbidden")

    def absent(*args: Any, **kwargs: Any) -> Any:
        raise client.ApiException(status=404, reason="Not Found")

    monkeypatch.setattr(client.CoreV1Api, "read_namespace", absent)
    monkeypatch.setattr(client.CoreV1Api, "patch_namespace_with_http_info", refuse)
    with pytest.raises(
        ConfigError,
        match=r"refused to let the spawner apply Namespace occam-ada \(403 Forbidden\): .*ClusterRole .*create and patch",
    ):
        prepare_namespace(client.ApiClient(), _objects())


def test_the_namespace_is_read_before_anything_is_applied(recorder: type[Recorder]):
    prepare_namespace(_api_client(), _objects())
    assert recorder.reads == [namespace_name("ada")]


@pytest.mark.parametrize(
    ("labels", "annotations", "message"),
    [
        ({}, {}, r"namespace occam-ada already exists and Occam did not make it .*kubectl delete namespace occam-ada"),
        (
            {"app.kubernetes.io/managed-by": "occam-spawner"},
            {"occam.io/username": "Ada"},
            r"namespace occam-ada belongs to user 'Ada' .*not to 'ada'.*namespace_prefix",
        ),
        (
            {"app.kubernetes.io/managed-by": "occam-spawner", "occam.io/user": "bob"},
            {},
            r"made by Occam for user label 'bob', not for user 'ada'",
        ),
    ],
)
def test_a_namespace_that_is_not_the_student_s_is_never_taken_over(
    recorder: type[Recorder], labels: dict[str, str], annotations: dict[str, str], message: str
):
    recorder.existing["Namespace/occam-ada"] = {
        "metadata": {"name": "occam-ada", "labels": labels, "annotations": annotations}
    }
    with pytest.raises(ConfigError, match=message):
        prepare_namespace(_api_client(), _objects())
    assert recorder.calls == []  # nothing was written


@pytest.mark.parametrize(
    "metadata",
    [
        {"labels": {"app.kubernetes.io/managed-by": "occam-spawner"}, "annotations": {"occam.io/username": "ada"}},
        # made before the annotation existed: the user label decides
        {"labels": {"app.kubernetes.io/managed-by": "occam-spawner", "occam.io/user": "ada"}},
    ],
)
def test_the_student_s_own_namespace_is_taken_over(recorder: type[Recorder], metadata: dict[str, Any]):
    recorder.existing["Namespace/occam-ada"] = {"metadata": {"name": "occam-ada", **metadata}}
    applied = prepare_namespace(_api_client(), _objects())
    assert applied[0] == Applied("Namespace", "occam-ada", APPLIED)


def test_phases_the_namespace_alone_then_what_needs_only_it_then_what_needs_the_hub_s_binding():
    claim = work_claim(namespace_name("ada"), {}, "nfs-client", "10Gi")
    objects = [*namespace_objects("ada", LIMITS, **HUB, hub_user="hub", pull_secrets=[PULL_SECRET]), claim]
    phases = apply_phases(objects)
    assert [o["kind"] for o in phases.namespaces] == ["Namespace"]
    assert {o["kind"] for o in phases.independent} == {
        "ServiceAccount",
        "RoleBinding",
        "ResourceQuota",
        "LimitRange",
        "NetworkPolicy",
    }
    assert [o["kind"] for o in phases.hub_bound] == ["Secret", "PersistentVolumeClaim"]
    assert phases.namespaces + phases.independent + phases.hub_bound == sorted(objects, key=_phase_of)


def _kind(method: str, args: tuple[Any, ...]) -> str:
    """The kind a Recorder call applies, else the method's name (a read or a delete)."""
    return str(args[-1]["kind"]) if method.endswith("_with_http_info") else method


def _phase_of(obj: dict[str, Any]) -> int:
    return 0 if obj["kind"] == "Namespace" else 2 if obj["kind"] in HUB_BOUND_KINDS else 1


def test_the_objects_that_need_only_the_namespace_are_applied_at_once(
    recorder: type[Recorder], monkeypatch: pytest.MonkeyPatch
):
    objects = _objects()
    independent = len(apply_phases(objects).independent)
    assert independent >= 6
    # Each of those applies waits until all of them (at most APPLY_CONCURRENCY) are in flight: one after
    # another, the first would wait in vain and the barrier break.
    parties = min(independent, APPLY_CONCURRENCY)
    barrier = threading.Barrier(parties, timeout=10)
    in_flight: list[int] = []
    lock = threading.Lock()
    patch = Recorder.__getattr__

    def waiting(self: Recorder, method: str) -> Any:
        inner = patch(self, method)

        def call(*args: Any, **kwargs: Any) -> Any:
            if method.endswith("_with_http_info") and _kind(method, args) != "Namespace":
                with lock:
                    first = len(in_flight) < parties
                    in_flight.append(1)
                if first:
                    barrier.wait()
            return inner(*args, **kwargs)

        return call

    monkeypatch.setattr(Recorder, "__getattr__", waiting)
    applied = prepare_namespace(_api_client(), objects)
    assert [(a.kind, a.name) for a in applied] == [(o["kind"], o["metadata"]["name"]) for o in objects]
    assert len(in_flight) == independent


def test_a_failed_apply_is_reported_after_the_others_of_its_phase_finished(
    recorder: type[Recorder], monkeypatch: pytest.MonkeyPatch
):
    patch = Recorder.__getattr__

    def refusing_quotas(self: Recorder, method: str) -> Any:
        if method == "patch_namespaced_resource_quota_with_http_info":

            def refuse(*args: Any, **kwargs: Any) -> Any:
                raise client.ApiException(status=422, reason="Unprocessable Entity")

            return refuse
        return patch(self, method)

    monkeypatch.setattr(Recorder, "__getattr__", refusing_quotas)
    with pytest.raises(
        ConfigError, match=r"rejected the object when asked to apply ResourceQuota occam-ada/occam-quota"
    ):
        prepare_namespace(_api_client(), _objects())
    # Every other object of that phase was still applied (none left running), and nothing after it.
    written = {args[-1]["kind"] for _, args, _ in recorder.calls}
    assert written == {o["kind"] for o in _objects()} - {"ResourceQuota"}


def test_a_namespace_just_made_is_not_searched_for_withdrawn_policies(recorder: type[Recorder]):
    prepare_namespace(_api_client(), _objects())
    assert recorder.deletes == []  # new: no occam-internet to look for
    prepare_namespace(_api_client(), _objects())
    assert recorder.deletes == [("occam-internet", namespace_name("ada"))]  # a returning student's: looked for


def test_objects_the_hub_makes_through_its_binding_wait_until_it_is_in_force(
    recorder: type[Recorder], monkeypatch: pytest.MonkeyPatch
):
    order: list[str] = []
    monkeypatch.setattr(
        "spawner.apply.wait_until_allowed", lambda api_client, ns, verb, resource: order.append(f"may {resource}")
    )
    patch = Recorder.__getattr__

    def recording(self: Recorder, method: str) -> Any:
        inner = patch(self, method)

        def call(*args: Any, **kwargs: Any) -> Any:
            order.append(_kind(method, args))
            return inner(*args, **kwargs)

        return call

    monkeypatch.setattr(Recorder, "__getattr__", recording)
    claim = work_claim(namespace_name("ada"), {}, "nfs-client", "10Gi")
    objects = [*namespace_objects("ada", LIMITS, **HUB, hub_user="hub", pull_secrets=[PULL_SECRET]), claim]
    applied = prepare_namespace(_api_client(), objects)
    assert [(a.kind, a.name) for a in applied] == [(o["kind"], o["metadata"]["name"]) for o in objects]
    first_wait = min(order.index("may secrets"), order.index("may persistentvolumeclaims"))
    assert order[0] == "read_namespace" and order[1] == "Namespace"
    assert {"RoleBinding", "ResourceQuota"} <= set(order[2:first_wait])
    assert set(order[first_wait + 2 :]) == {"Secret", "PersistentVolumeClaim"}
