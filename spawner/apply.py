"""Make a student's namespace objects say what the builders say, with Kubernetes server-side apply.

:func:`prepare_namespace` sends each object of :func:`spawner.namespace.namespace_objects` to the API
server as an apply patch (``application/apply-patch+yaml``) under the field manager
:data:`FIELD_MANAGER`. The API server creates what is missing, sets every field the object names,
removes the fields this manager set before and no longer names (a resource dropped from the quota), and
leaves everything else alone: labels others added (an admin's Pod Security labels on the namespace),
the quota's status, the defaults it fills in. An object that already says it all is not written, so a
second call changes nothing. Applies are forced: a field someone edited by hand (a quota raised with
``kubectl edit``) is taken back and reset at the next spawn, as the builders are the source of truth
for every field they set.

Before the Namespace is applied, the one of that name is read: an existing namespace is taken over
only if Occam made it for the same user (:func:`spawner.namespace.adoption_problem`), or the spawn fails
with a :class:`~occam.errors.ConfigError` that says so and what an admin can do.

The objects go in the phases of :func:`apply_phases`: the Namespace alone (nothing can be made in it
before), then every object that needs only the Namespace, at once (at most :data:`APPLY_CONCURRENCY`
requests in flight), then, once the hub's new RoleBinding is in force, the kinds the hub may make only
through it (:data:`~spawner.namespace.HUB_BOUND_KINDS`). A workshop's spawns come together, and the hub
prepares their namespaces side by side: one spawn's requests in sequence would make it wait for each round
trip in turn. Responses are not decoded into the client's models (only the status code, and the
Namespace's phase, are read): the hub's one Python process decodes for every spawn.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from occam.errors import ConfigError
from occam.kubernetes.api import REQUEST_TIMEOUT_SECONDS, call
from spawner.namespace import HUB_BOUND_KINDS, adoption_problem
from spawner.network_policy import withdrawn_policies

#: The field manager the API server records as the owner of every field the spawner applies.
FIELD_MANAGER = "occam-spawner"

#: The content type that makes a PATCH a server-side apply.
APPLY_PATCH = "application/apply-patch+yaml"

#: The most requests one :func:`prepare_namespace` has in flight at once.
APPLY_CONCURRENCY = 8

CREATED = "created"
APPLIED = "applied"
DELETED = "deleted"

#: kind -> (the typed API class of ``kubernetes.client``, its patch method). Namespace is the only
#: cluster-scoped kind; the others are patched in their namespace.
PATCH_METHODS: dict[str, tuple[str, str]] = {
    "Namespace": ("CoreV1Api", "patch_namespace"),
    "ServiceAccount": ("CoreV1Api", "patch_namespaced_service_account"),
    "Secret": ("CoreV1Api", "patch_namespaced_secret"),
    "ResourceQuota": ("CoreV1Api", "patch_namespaced_resource_quota"),
    "LimitRange": ("CoreV1Api", "patch_namespaced_limit_range"),
    "RoleBinding": ("RbacAuthorizationV1Api", "patch_namespaced_role_binding"),
    "NetworkPolicy": ("NetworkingV1Api", "patch_namespaced_network_policy"),
    "PersistentVolumeClaim": ("CoreV1Api", "patch_namespaced_persistent_volume_claim"),
}

#: The resource (for an access review) of each of :data:`spawner.namespace.HUB_BOUND_KINDS`.
_RESOURCES = {"Secret": "secrets", "PersistentVolumeClaim": "persistentvolumeclaims"}

_REFUSED = (
    "the hub's service account needs a ClusterRole that lets it create and patch namespaces, service "
    "accounts, role bindings, resource quotas, limit ranges and network policies (and delete network "
    "policies), and bind the notebook's and the hub's in-namespace ClusterRoles (Kubernetes refuses a "
    "RoleBinding to a ClusterRole the account may not bind); spawner.hub_rbac.hub_cluster_role and the "
    "chart's hub ClusterRole are that role"
)
_PULL_SECRET_REFUSED = (
    "the hub may read only the image pull Secrets its Role names (the chart's Role occam-hub-pull-secrets, made "
    "from occam.imagePullSecrets; spawner.hub_rbac.pull_secret_reader_rules): add the name to "
    "occam.imagePullSecrets and upgrade the release"
)
_UNREACHABLE = (
    "Check that the cluster is up and that the hub may reach it (its address, certificates and network policies)"
)


@dataclass(frozen=True)
class Applied:
    """What :func:`prepare_namespace` did with one object: ``created``, or ``applied`` to one that existed
    (the API server wrote only what differed, if anything)."""

    kind: str
    name: str
    action: str


def _apply_one(api_client: Any, desired: dict[str, Any], timeout: float) -> Applied:
    from kubernetes import client

    kind = desired["kind"]
    name, namespace = desired["metadata"]["name"], desired["metadata"].get("namespace")
    api_class, method = PATCH_METHODS[kind]
    # The *_with_http_info variant; without preloaded content it returns the raw response (201 when the
    # apply created the object), and the client decodes nothing.
    patch = getattr(getattr(client, api_class)(api_client), f"{method}_with_http_info")
    where = f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"
    response = call(
        api_client,
        f"apply {where}",
        patch,
        *((name, desired) if namespace is None else (name, namespace, desired)),
        who="the spawner",
        refused=_REFUSED,
        unreachable=_UNREACHABLE,
        timeout=timeout,
        field_manager=FIELD_MANAGER,
        force=True,
        _content_type=APPLY_PATCH,
        _preload_content=False,
    )
    status, body = _read(response)
    if kind == "Namespace":
        phase = (json.loads(body).get("status") or {}).get("phase")
        if phase == "Terminating":
            # Nothing new may be made in it until it is gone; then the next apply makes it anew.
            raise ConfigError(
                f"namespace {name} is still being deleted (its last objects are going away); try again in a minute"
            )
    return Applied(kind, name, CREATED if status == 201 else APPLIED)


def _read(response: Any) -> tuple[int, bytes]:
    """The status and body of a raw (urllib3) response, its connection back in the pool."""
    try:
        return int(response.status), bytes(response.data)
    finally:
        response.release_conn()


def check_adoption(api_client: Any, desired: dict[str, Any], timeout: float = REQUEST_TIMEOUT_SECONDS) -> None:
    """Raise ConfigError if the Namespace ``desired`` names exists and is not this user's Occam namespace."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    name = desired["metadata"]["name"]
    try:
        response = call(
            api_client,
            f"read namespace {name}",
            client.CoreV1Api(api_client).read_namespace,
            name,
            who="the spawner",
            refused=_REFUSED.replace("create and patch namespaces", "get, create and patch namespaces"),
            unreachable=_UNREACHABLE,
            timeout=timeout,
            _preload_content=False,
        )
    except ApiException as exc:
        if exc.status == 404:
            return
        raise
    problem = adoption_problem(json.loads(_read(response)[1]), desired)
    if problem is not None:
        raise ConfigError(problem)


def read_pull_secrets(
    api_client: Any, namespace: str, names: list[str], *, timeout: float = REQUEST_TIMEOUT_SECONDS
) -> list[dict[str, Any]]:
    """The image pull Secrets ``names`` of the hub's ``namespace``, as dicts for
    :func:`spawner.namespace.pull_secret_copy`; a missing one is a ConfigError naming it and the fix."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    found = []
    for name in names:
        try:
            secret = call(
                api_client,
                f"read Secret {namespace}/{name}",
                client.CoreV1Api(api_client).read_namespaced_secret,
                name,
                namespace,
                who="the spawner",
                refused=_PULL_SECRET_REFUSED,
                unreachable=_UNREACHABLE,
                timeout=timeout,
            )
        except ApiException as exc:
            if exc.status == 404:
                raise ConfigError(
                    f"image pull Secret {name!r} (occam.imagePullSecrets, OccamSpawner.copied_pull_secrets) does not "
                    f"exist in the hub's namespace {namespace}: create it there (kubectl -n {namespace} create secret "
                    "docker-registry ...) or remove it from the setting"
                ) from None
            raise
        found.append(api_client.sanitize_for_serialization(secret))
    return found


@dataclass(frozen=True)
class Phases:
    """A namespace's objects in the order :func:`prepare_namespace` applies them, each phase once the one
    before is done, the objects within one at once (:func:`apply_phases`)."""

    #: The Namespaces: nothing can be made in one before it exists.
    namespaces: list[dict[str, Any]]
    #: What needs only its Namespace: ServiceAccount, RoleBindings, quota, LimitRange, NetworkPolicies.
    independent: list[dict[str, Any]]
    #: The kinds the hub may make only through its RoleBinding of the phase before
    #: (:data:`~spawner.namespace.HUB_BOUND_KINDS`: pull Secret copies, the work claim, which the quota of
    #: the phase before then counts).
    hub_bound: list[dict[str, Any]]


def apply_phases(objects: Sequence[dict[str, Any]]) -> Phases:
    """``objects`` (a namespace's, :func:`~spawner.namespace.namespace_objects`) split into the phases they
    are applied in; the order within a phase is that of ``objects``."""
    return Phases(
        namespaces=[o for o in objects if o["kind"] == "Namespace"],
        independent=[o for o in objects if o["kind"] != "Namespace" and o["kind"] not in HUB_BOUND_KINDS],
        hub_bound=[o for o in objects if o["kind"] in HUB_BOUND_KINDS],
    )


_T = TypeVar("_T")


def _all_at_once(pool: ThreadPoolExecutor, work: Sequence[Callable[[], _T]]) -> list[_T]:
    """Each of ``work`` run in ``pool``; their results in order, once all are done. The first failure (in
    that order) is raised, after the others finished: no request of this phase is left running."""
    if len(work) <= 1:
        return [job() for job in work]
    futures = [pool.submit(job) for job in work]
    errors = [future.exception() for future in futures]
    for error in errors:
        if error is not None:
            raise error
    return [future.result() for future in futures]


def prepare_namespace(
    api_client: Any,
    objects: list[dict[str, Any]],
    *,
    timeout: float = REQUEST_TIMEOUT_SECONDS,
    concurrency: int = APPLY_CONCURRENCY,
) -> list[Applied]:
    """Apply ``objects`` (:func:`~spawner.namespace.namespace_objects`) in the phases of :func:`apply_phases`,
    at most ``concurrency`` requests at once; return what was done with each, in the order of ``objects``
    (those of :data:`~spawner.namespace.HUB_BOUND_KINDS` are applied last, once the hub may make them:
    :func:`wait_until_allowed`), and with each optional NetworkPolicy the settings no longer want
    (:func:`~spawner.network_policy.withdrawn_policies`: deleted, if it was there; not looked for in a
    namespace this call created).

    ``api_client`` is a ``kubernetes.client.ApiClient`` with the hub's credentials (it may be shared:
    requests run in threads of their own). Safe to call at every spawn: the API server writes only what
    differs. Every request gives up after ``timeout`` seconds. A refusal (401/403), an invalid object (422)
    or an unreachable API server raises :class:`~occam.errors.ConfigError` saying what to fix (the first
    object's, in order, when several fail at once), and so does a Namespace that exists but is not this
    user's Occam namespace (:func:`check_adoption`), before anything is written.
    """
    for desired in objects:
        if desired["kind"] == "Namespace":
            check_adoption(api_client, desired, timeout)
    phases = apply_phases(objects)
    position = {id(o): i for i, o in enumerate(objects)}
    done: dict[int, Applied] = {}

    def apply_all(phase: list[dict[str, Any]]) -> None:
        results = _all_at_once(pool, [partial(_apply_one, api_client, o, timeout) for o in phase])
        done.update((position[id(o)], result) for o, result in zip(phase, results, strict=True))

    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="occam-apply") as pool:
        apply_all(phases.namespaces)
        # Withdrawn optional policies go with the other policies, but are not looked for in a namespace just made.
        created = {a.name for a in done.values() if a.kind == "Namespace" and a.action == CREATED}
        withdrawn = [(ns, name) for ns, name in withdrawn_policies(objects) if ns not in created]
        applies: list[Callable[[], Applied | None]] = [
            partial(_apply_one, api_client, o, timeout) for o in phases.independent
        ]
        deletes: list[Callable[[], Applied | None]] = [
            partial(_delete_policy, api_client, ns, name, timeout) for ns, name in withdrawn
        ]
        results = _all_at_once(pool, applies + deletes)
        done.update((position[id(o)], r) for o, r in zip(phases.independent, results, strict=False) if r is not None)
        deleted = [r for r in results[len(applies) :] if r is not None]
        # A RoleBinding just applied takes a moment to reach the authorizer (an admin's account passes at once).
        checks = sorted({(o["metadata"]["namespace"], _RESOURCES[o["kind"]]) for o in phases.hub_bound})
        _all_at_once(pool, [partial(wait_until_allowed, api_client, ns, "create", res) for ns, res in checks])
        apply_all(phases.hub_bound)
    return [done[i] for i in sorted(done)] + deleted


def _delete_policy(api_client: Any, namespace: str, name: str, timeout: float) -> Applied | None:
    """Delete the NetworkPolicy ``namespace/name``; None if there was none."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        response = call(
            api_client,
            f"delete NetworkPolicy {namespace}/{name}",
            client.NetworkingV1Api(api_client).delete_namespaced_network_policy,
            name,
            namespace,
            who="the spawner",
            refused=_REFUSED,
            unreachable=_UNREACHABLE,
            timeout=timeout,
            _preload_content=False,
        )
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    _read(response)
    return Applied("NetworkPolicy", name, DELETED)


def own_username(api_client: Any, timeout: float = REQUEST_TIMEOUT_SECONDS) -> str:
    """The username the API server knows ``api_client``'s credentials by (a SelfSubjectReview, which every
    authenticated account may make), e.g. ``system:serviceaccount:jhub:occam-hub``."""
    from kubernetes import client

    review = call(
        api_client,
        "review its own identity",
        client.AuthenticationV1Api(api_client).create_self_subject_review,
        {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
        who="the spawner",
        refused="every authenticated account may ask who it is (Kubernetes 1.28+)",
        unreachable=_UNREACHABLE,
        timeout=timeout,
    )
    return str(review.status.user_info.username)


def wait_until_allowed(
    api_client: Any,
    namespace: str,
    verb: str,
    resource: str,
    *,
    timeout: float = 15.0,
    interval: float = 0.025,
    max_interval: float = 0.1,
) -> None:
    """Return once ``api_client``'s account may ``verb`` ``resource`` in ``namespace`` (SelfSubjectAccessReview);
    a RoleBinding just applied takes a moment to reach the API server's authorizer (a tenth of a second or
    so; the spawn waits for it, so the reviews start ``interval`` seconds apart, growing by half up to
    ``max_interval``: it is seen soon after, and a review is cheap, nothing is stored). ConfigError after
    ``timeout`` seconds."""
    from kubernetes import client

    api = client.AuthorizationV1Api(api_client)
    body = {"spec": {"resourceAttributes": {"namespace": namespace, "verb": verb, "resource": resource}}}
    deadline = time.monotonic() + timeout
    while True:
        review = call(
            api_client,
            f"check that it may {verb} {resource} in {namespace}",
            api.create_self_subject_access_review,
            body,
            who="the spawner",
            refused="every authenticated account may ask what it may do",
            unreachable=_UNREACHABLE,
        )
        if review.status.allowed:
            return
        if time.monotonic() > deadline:
            raise ConfigError(
                f"after {timeout:g} s the hub still may not {verb} {resource} in namespace {namespace}, although "
                f"the RoleBinding that allows it was applied: check that the hub's ClusterRole may bind the "
                "ClusterRole it names (the chart's hub ClusterRole, spawner.hub_rbac)"
            )
        time.sleep(interval)
        interval = min(1.5 * interval, max_interval)


__all__ = [
    "APPLIED",
    "APPLY_CONCURRENCY",
    "APPLY_PATCH",
    "CREATED",
    "DELETED",
    "FIELD_MANAGER",
    "PATCH_METHODS",
    "Applied",
    "apply_phases",
    "check_adoption",
    "own_username",
    "prepare_namespace",
    "read_pull_secrets",
    "wait_until_allowed",
]
