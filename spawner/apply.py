"""Create or update a student's namespace objects through the Kubernetes API, idempotently.

:func:`prepare_namespace` creates each object of :func:`spawner.namespace.namespace_objects` that is
missing and updates one whose fields differ from what the builders say (new course limits, say). An
object that already matches is left alone, so a second call writes nothing. Labels that others added
(an admin's Pod Security labels on the namespace, for instance) are kept.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from occam.errors import ConfigError
from occam.kubernetes.objects import parse_quantity

#: Seconds each API request may take before it is abandoned.
REQUEST_TIMEOUT_SECONDS = 15

CREATED = "created"
UPDATED = "updated"
UNCHANGED = "unchanged"

#: The fields each kind's builder owns (besides labels); an update rewrites these and keeps the rest.
_OWNED: dict[str, tuple[str, ...]] = {
    "Namespace": (),
    "ServiceAccount": (),
    "Role": ("rules",),
    "RoleBinding": ("roleRef", "subjects"),
    "ResourceQuota": ("spec",),
    "LimitRange": ("spec",),
    "NetworkPolicy": ("spec",),
}


@dataclass(frozen=True)
class Applied:
    """What :func:`prepare_namespace` did with one object: ``created``, ``updated`` or ``unchanged``."""

    kind: str
    name: str
    action: str


@dataclass(frozen=True)
class _Calls:
    read: Callable[..., Any]
    create: Callable[..., Any]
    replace: Callable[..., Any]
    delete: Callable[..., Any]


def _calls(api_client: Any, kind: str, name: str, namespace: str | None) -> _Calls:
    from kubernetes import client

    core = client.CoreV1Api(api_client)
    rbac = client.RbacAuthorizationV1Api(api_client)
    networking = client.NetworkingV1Api(api_client)
    if kind == "Namespace":
        return _Calls(
            read=lambda **kw: core.read_namespace(name, **kw),
            create=lambda body, **kw: core.create_namespace(body, **kw),
            replace=lambda body, **kw: core.replace_namespace(name, body, **kw),
            delete=lambda **kw: core.delete_namespace(name, **kw),
        )
    api, suffix = {
        "ServiceAccount": (core, "service_account"),
        "ResourceQuota": (core, "resource_quota"),
        "LimitRange": (core, "limit_range"),
        "Role": (rbac, "role"),
        "RoleBinding": (rbac, "role_binding"),
        "NetworkPolicy": (networking, "network_policy"),
    }[kind]
    read = getattr(api, f"read_namespaced_{suffix}")
    create = getattr(api, f"create_namespaced_{suffix}")
    replace = getattr(api, f"replace_namespaced_{suffix}")
    delete = getattr(api, f"delete_namespaced_{suffix}")
    return _Calls(
        read=lambda **kw: read(name, namespace, **kw),
        create=lambda body, **kw: create(namespace, body, **kw),
        replace=lambda body, **kw: replace(name, namespace, body, **kw),
        delete=lambda **kw: delete(name, namespace, **kw),
    )


def _same_quantity(a: str, b: str) -> bool:
    try:
        return parse_quantity(a) == parse_quantity(b)
    except ConfigError:
        return False


def matches(desired: Any, actual: Any, *, exact_keys: bool = False) -> bool:
    """Whether ``actual`` (as the API server returns it) already says everything ``desired`` says.

    Maps may hold more keys than desired (defaults the server fills in), unless ``exact_keys``; lists
    must match item by item; strings that are equal Kubernetes quantities match (``"1000m"`` and ``"1"``).
    """
    if isinstance(desired, Mapping):
        if not isinstance(actual, Mapping):
            return False
        if exact_keys and set(desired) != set(actual):
            return False
        return all(
            key in actual and matches(value, actual[key], exact_keys=exact_keys) for key, value in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(actual, list)
            and len(desired) == len(actual)
            and all(matches(d, a, exact_keys=exact_keys) for d, a in zip(desired, actual, strict=True))
        )
    if isinstance(desired, str) and isinstance(actual, str) and desired != actual:
        return _same_quantity(desired, actual)
    return bool(desired == actual)


def _up_to_date(desired: dict[str, Any], actual: dict[str, Any]) -> bool:
    labels = (actual.get("metadata") or {}).get("labels") or {}
    if not matches(desired["metadata"].get("labels", {}), labels):
        return False
    for field in _OWNED[desired["kind"]]:
        # A quota's or limit range's resource names are ours alone: one we dropped must go.
        exact = desired["kind"] in ("ResourceQuota", "LimitRange")
        if not matches(desired.get(field), actual.get(field), exact_keys=exact):
            return False
    return True


def _updated(desired: dict[str, Any], actual: dict[str, Any]) -> dict[str, Any]:
    body = copy.deepcopy(actual)
    body.pop("status", None)
    metadata = body.setdefault("metadata", {})
    metadata["labels"] = {**(metadata.get("labels") or {}), **desired["metadata"].get("labels", {})}
    for field in _OWNED[desired["kind"]]:
        body[field] = copy.deepcopy(desired[field])
    return body


class _Caller:
    def __init__(self, api_client: Any, timeout: float) -> None:
        self.api_client = api_client
        self.timeout = timeout
        self.host = getattr(getattr(api_client, "configuration", None), "host", "the API server")

    def __call__(self, what: str, method: Callable[..., Any], *args: Any, missing_ok: bool = False) -> Any:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            result = method(*args, _request_timeout=self.timeout)
        except ApiException as exc:
            if exc.status == 404 and missing_ok:
                return None
            if exc.status in (401, 403):
                raise ConfigError(
                    f"Kubernetes refused to let the spawner {what} ({exc.status} {exc.reason}): the hub's service "
                    "account needs a ClusterRole that lets it create and update namespaces, service accounts, "
                    "roles, role bindings, resource quotas, limit ranges and network policies, and that holds "
                    "every permission the notebook's Role grants (Kubernetes refuses to let an account grant "
                    f"what it does not have). The API server said: {_reason(exc)}"
                ) from None
            if exc.status == 422:
                raise ConfigError(f"Kubernetes rejected the object when asked to {what}: {_reason(exc)}") from None
            raise
        except HTTPError as exc:
            raise ConfigError(
                f"cannot reach the Kubernetes API at {self.host} to {what}: {exc}. Check that the cluster is up and "
                "that the hub may reach it (its address, certificates and network policies)"
            ) from None
        return self.api_client.sanitize_for_serialization(result)


def _reason(exc: Any) -> str:
    import json

    try:
        return str(json.loads(exc.body).get("message") or exc.body)
    except (TypeError, ValueError, AttributeError):
        return str(exc.body or exc.reason)


def _apply_one(call: _Caller, desired: dict[str, Any]) -> Applied:
    from kubernetes.client.exceptions import ApiException

    kind = desired["kind"]
    metadata = desired["metadata"]
    name, namespace = metadata["name"], metadata.get("namespace")
    where = f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"
    calls = _calls(call.api_client, kind, name, namespace)
    for _attempt in range(3):
        actual = call(f"read {where}", calls.read, missing_ok=True)
        if actual is None:
            try:
                call(f"create {where}", calls.create, desired)
            except ApiException as exc:
                if exc.status == 409:  # made meanwhile (another spawn of the same user): read it again
                    continue
                raise
            return Applied(kind, name, CREATED)
        if kind == "Namespace" and (actual.get("status") or {}).get("phase") == "Terminating":
            raise ConfigError(
                f"namespace {name} is still being deleted (its last objects are going away); try again in a minute"
            )
        if _up_to_date(desired, actual):
            return Applied(kind, name, UNCHANGED)
        if kind == "RoleBinding" and not matches(desired["roleRef"], actual.get("roleRef")):
            # roleRef cannot change in place: the binding must be made anew.
            call(f"delete {where}", calls.delete, missing_ok=True)
            continue
        try:
            call(f"update {where}", calls.replace, _updated(desired, actual))
        except ApiException as exc:
            if exc.status == 409:  # changed since we read it: read it again
                continue
            raise
        return Applied(kind, name, UPDATED)
    raise ConfigError(f"{where} kept changing while the spawner updated it; try again")


def prepare_namespace(
    api_client: Any, objects: list[dict[str, Any]], *, timeout: float = REQUEST_TIMEOUT_SECONDS
) -> list[Applied]:
    """Make a student's namespace hold exactly ``objects`` (:func:`~spawner.namespace.namespace_objects`, the
    Namespace first); return what was done with each, in order.

    ``api_client`` is a ``kubernetes.client.ApiClient`` with the hub's credentials. Safe to call at
    every spawn: objects that already match are not written. Every request gives up after ``timeout``
    seconds. A refusal (401/403), an invalid object (422) or an unreachable API server raises
    :class:`~occam.errors.ConfigError` saying what to fix.
    """
    call = _Caller(api_client, timeout)
    return [_apply_one(call, desired) for desired in objects]


__all__ = ["CREATED", "UNCHANGED", "UPDATED", "Applied", "matches", "prepare_namespace"]
