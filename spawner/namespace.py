"""Pure builders of a student's namespace and what the notebook needs in it: plain dicts, in apply order.

Each student gets a namespace of their own (:func:`namespace_name`). In it, the notebook pod runs as the
ServiceAccount :data:`SERVICE_ACCOUNT`, bound there (:func:`role_binding`) to the ClusterRole of
:data:`NOTEBOOK_RULES`, which allows exactly what ``start_cluster`` does and nothing cluster-wide; the
hub's own account is bound there (:func:`hub_role_binding`) to what it does in the namespace; a ResourceQuota and a LimitRange carry the course's
:class:`~spawner.limits.CourseLimits`; NetworkPolicies (:mod:`spawner.network_policy`) deny every connection
in and out but those Occam needs: DNS, the API server, the hub and its proxy, the student's own pods
among themselves, and the internet if the course allows it. Every object is labelled
``app.kubernetes.io/managed-by: occam-spawner`` and ``occam.io/user``.

The Namespace itself carries Pod Security admission labels (:func:`pod_security_labels`: every pod in it
must meet the ``restricted`` level) and the exact username in the annotation :data:`USERNAME_ANNOTATION`,
which :func:`adoption_problem` checks before the spawner touches a namespace that already exists.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

from occam.contract import GPU_RESOURCE, MANAGED_BY_LABEL, SPAWNER_MANAGED_BY, USER_LABEL, USERNAME_ANNOTATION
from occam.kubernetes.objects import label_value, parse_quantity
from spawner.limits import CourseLimits
from spawner.network_policy import NOTEBOOK, NOTEBOOK_SELECTOR, NetworkAccess, network_policies

MANAGED_BY = SPAWNER_MANAGED_BY

NAMESPACE_PREFIX = "occam-"
#: The account the notebook pod runs as; the Role below is bound to it.
SERVICE_ACCOUNT = "occam-notebook"
#: Namespaces made by older spawners hold a Role of this name (the notebook's rules) and a RoleBinding;
#: they are left as they are (they grant what NOTEBOOK_BINDING grants).
ROLE = "occam-notebook"
#: The RoleBinding of the notebook's ClusterRole (a new name: a RoleBinding's roleRef cannot change).
NOTEBOOK_BINDING = "occam-notebook-access"
#: The ClusterRole with :data:`NOTEBOOK_RULES` (the chart's and spawner.hub_rbac's).
NOTEBOOK_CLUSTER_ROLE = "occam-notebook"
#: The RoleBinding that lets the hub manage the notebook pod and clean up in the namespace.
HUB_BINDING = "occam-hub"
#: The ClusterRole of what the hub does inside a student namespace (spawner.hub_rbac.HUB_NAMESPACE_RULES).
HUB_NAMESPACE_ROLE = "occam-hub-namespace"
RESOURCE_QUOTA = "occam-quota"
LIMIT_RANGE = "occam-limits"
#: Kinds the hub may make only through its RoleBinding in the namespace (spawner.hub_rbac.HUB_NAMESPACE_RULES),
#: not with its cluster-wide rights: applied once that binding is in force.
HUB_BOUND_KINDS = frozenset({"Secret", "PersistentVolumeClaim"})
#: The NetworkPolicy that guards the notebook pod (one of :func:`spawner.network_policy.network_policies`).
NETWORK_POLICY = NOTEBOOK


#: The Pod Security Standard every pod of a student's namespace must meet: the notebook (the spawner sets
#: its security context, spawner.notebook_pod), executors and batch drivers
#: (occam.kubernetes.objects.locked_down_pod_spec) all do.
POD_SECURITY_LEVEL = "restricted"
#: The version of the standard that is enforced: the Kubernetes minor release Occam is tested against, so
#: that a cluster upgrade cannot start refusing a course's pods mid-term. Warnings and audit use
#: ``latest``, so an admin sees what a newer standard would refuse before enforcing it.
POD_SECURITY_VERSION = "v1.34"
#: The levels a course may enforce: ``baseline`` for a shared volume that ``restricted`` refuses (an inline
#: ``nfs`` volume); never ``privileged``.
POD_SECURITY_LEVELS = ("restricted", "baseline")
#: The volume kinds ``restricted`` allows; anything else (``nfs``, ``hostPath``...) needs ``baseline`` or a claim.
RESTRICTED_VOLUME_KINDS = frozenset(
    {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"}
)
_POD_SECURITY = "pod-security.kubernetes.io"

#: Labels the spawner puts on the notebook pod; the NetworkPolicies select the pod by them.
NOTEBOOK_LABELS: dict[str, str] = dict(NOTEBOOK_SELECTOR)

#: A container that sets no CPU or memory gets this much (capped at the course's per-container maximum).
DEFAULT_CONTAINER_CPU = "1"
DEFAULT_CONTAINER_MEMORY = "1Gi"

_DNS_LABEL_MAX = 63
# 16 hex digits: 64 bits of SHA-256, so that no one can search for a username whose cleaned-up name
# and hash equal another student's namespace (32 bits took minutes of brute force).
_HASH_LENGTH = 16
_PREFIX_MAX = 30
_PREFIX = re.compile(rf"[a-z][a-z0-9-]{{0,{_PREFIX_MAX - 1}}}")
_HASHED = re.compile(rf"(.*-)?[0-9a-f]{{{_HASH_LENGTH}}}")

_CORE = ""
_APPS = "apps"
_BATCH = "batch"
#: What ``start_cluster`` does in the student's namespace, with the notebook's own account: the backend's
#: calls (occam/kubernetes/api.py: list ResourceQuotas, LimitRanges, pods and events; create Secrets;
#: delete pods and Secrets by label) and Spark's (create, get, watch, list and delete executor pods; its
#: executor ConfigMap, deleted by label when the application stops; on-demand PersistentVolumeClaims), and
#: ``occam.models.serve``'s (occam/models/serving_pod.py: create, read and delete a model service's
#: Deployment, or a kept one's Job, with its Service and Secret under the rules above; its pods are listed and
#: its log read).
#: Nothing here names a cluster-scoped resource, and no rule uses a wildcard.
NOTEBOOK_RULES: list[dict[str, Any]] = [
    {
        "apiGroups": [_CORE],
        "resources": ["pods"],
        "verbs": ["create", "get", "list", "watch", "delete", "deletecollection"],
    },
    {"apiGroups": [_CORE], "resources": ["pods/log"], "verbs": ["get"]},
    # patch: spark-submit in cluster mode applies the driver's Service and ConfigMap server-side (occam submit);
    # deletecollection: Spark's stop() deletes its services and PVCs by label.
    {
        "apiGroups": [_CORE],
        "resources": ["services"],
        "verbs": ["create", "get", "list", "watch", "patch", "delete", "deletecollection"],
    },
    {
        "apiGroups": [_CORE],
        "resources": ["configmaps"],
        "verbs": ["create", "get", "list", "watch", "patch", "delete", "deletecollection"],
    },
    {
        "apiGroups": [_CORE],
        "resources": ["secrets"],
        "verbs": ["create", "get", "list", "delete", "deletecollection"],
    },
    {"apiGroups": [_CORE], "resources": ["events"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": [_CORE], "resources": ["resourcequotas", "limitranges"], "verbs": ["get", "list"]},
    {
        "apiGroups": [_CORE],
        "resources": ["persistentvolumeclaims"],
        "verbs": ["get", "list", "create", "delete", "deletecollection"],
    },
    # A model service's Deployment: made, read (why its pod is missing: the quota) and deleted by name.
    {"apiGroups": [_APPS], "resources": ["deployments"], "verbs": ["create", "get", "delete"]},
    # A kept model service with an idle limit is a Job (it ends by itself): made, read and deleted by name.
    {"apiGroups": [_BATCH], "resources": ["jobs"], "verbs": ["create", "get", "delete"]},
]


def check_prefix(prefix: str) -> str:
    """``prefix`` if it can start a namespace name (lowercase letters, digits and ``-``; short), else ValueError."""
    if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix):
        raise ValueError(
            f"namespace prefix {prefix!r} must start with a lowercase letter, hold only lowercase letters, digits "
            f"and '-', and be at most {_PREFIX_MAX} characters, e.g. {NAMESPACE_PREFIX!r}"
        )
    return prefix


def namespace_name(username: str, *, prefix: str = NAMESPACE_PREFIX) -> str:
    """The student's namespace: ``occam-<username>`` made a DNS-1123 label, the same for the same user.

    A name that is already lowercase ``[a-z0-9-]`` (no leading, trailing or doubled ``-``) and short
    enough is kept as it is. Anything else is cleaned up and gets ``-`` and 16 hex digits (64 bits) of
    the username's SHA-256, so users whose names clean up alike (``Ada``, ``ada.``, ``ada``) still get
    different namespaces. So does a name that already ends like that (``ada-0123456789abcdef``), so that
    no user can pick a name equal to another's hashed namespace.
    """
    check_prefix(prefix)
    cleaned = re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9-]", "-", username.lower())).strip("-")
    plain = prefix + cleaned
    if cleaned and cleaned == username and len(plain) <= _DNS_LABEL_MAX and not _HASHED.fullmatch(cleaned):
        return plain
    digest = hashlib.sha256(username.encode("utf-8")).hexdigest()[:_HASH_LENGTH]
    room = _DNS_LABEL_MAX - len(prefix) - _HASH_LENGTH - 1
    stem = cleaned[:room].rstrip("-")
    return f"{prefix}{stem}-{digest}" if stem else f"{prefix}{digest}"


def labels(username: str) -> dict[str, str]:
    """The labels on every object the spawner makes for ``username``."""
    result = {MANAGED_BY_LABEL: MANAGED_BY}
    user = label_value(username)
    if user:
        result[USER_LABEL] = user
    return result


def _metadata(name: str, username: str, namespace: str | None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "labels": labels(username)}
    if namespace is not None:
        metadata["namespace"] = namespace
    return metadata


def check_pod_security_level(level: str) -> str:
    """``level`` if a course may enforce it (:data:`POD_SECURITY_LEVELS`), else ValueError."""
    if level not in POD_SECURITY_LEVELS:
        raise ValueError(
            f"pod security level {level!r} must be one of {', '.join(POD_SECURITY_LEVELS)}: students' namespaces "
            "never allow privileged pods"
        )
    return level


def restricted_volume_problem(source: Mapping[str, Any], level: str) -> str | None:
    """Why Pod Security ``level`` would refuse a pod that mounts the volume ``source``; None if it would not."""
    kinds = sorted(set(source) - RESTRICTED_VOLUME_KINDS)
    if level != "restricted" or not kinds:
        return None
    return (
        f"the shared work volume is a {', '.join(kinds)} volume, which Pod Security's restricted level (enforced in "
        "every student namespace) refuses in pods; use a persistentVolumeClaim (e.g. a PersistentVolume of that "
        "NFS export bound to a claim in each namespace) or a csi volume, or set OccamSpawner.pod_security_level = "
        '"baseline"'
    )


def pod_security_labels(level: str = POD_SECURITY_LEVEL, version: str = POD_SECURITY_VERSION) -> dict[str, str]:
    """Pod Security admission labels: ``enforce`` ``level`` at ``version``; ``warn`` and ``audit`` ``restricted`` at
    ``latest`` whatever is enforced, so a ``baseline`` course still sees (and logs) what ``restricted`` would refuse."""
    check_pod_security_level(level)
    labels = {f"{_POD_SECURITY}/{mode}": POD_SECURITY_LEVEL for mode in ("warn", "audit")}
    labels[f"{_POD_SECURITY}/enforce"] = level
    labels[f"{_POD_SECURITY}/enforce-version"] = version
    labels[f"{_POD_SECURITY}/warn-version"] = "latest"
    labels[f"{_POD_SECURITY}/audit-version"] = "latest"
    return labels


def namespace(
    username: str, *, prefix: str = NAMESPACE_PREFIX, pod_security_level: str = POD_SECURITY_LEVEL
) -> dict[str, Any]:
    """The student's v1 Namespace: Occam's labels, :func:`pod_security_labels`, the username annotation."""
    metadata = _metadata(namespace_name(username, prefix=prefix), username, None)
    metadata["labels"].update(pod_security_labels(pod_security_level))
    metadata["annotations"] = {USERNAME_ANNOTATION: username}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata}


def adoption_problem(existing: Mapping[str, Any], desired: Mapping[str, Any]) -> str | None:
    """Why the spawner must not take over the Namespace ``existing`` for ``desired`` (:func:`namespace`); None if
    it may.

    It may when Occam's spawner made it (``app.kubernetes.io/managed-by: occam-spawner``) for the same
    user: its :data:`USERNAME_ANNOTATION` is the username, or, for a namespace made before the
    annotation existed, it has none and its ``occam.io/user`` label is the username's label value.
    Anything else (a namespace of another user whose name cleaned up alike, an admin's own namespace
    that happens to have the name) is left alone, or the student's pods would run beside someone else's
    objects, under someone else's quota and Role.
    """
    metadata = existing.get("metadata") or {}
    name = metadata.get("name", "")
    labels = metadata.get("labels") or {}
    annotations = metadata.get("annotations") or {}
    username = desired["metadata"]["annotations"][USERNAME_ANNOTATION]
    fix = (
        f"an admin must delete or rename it (kubectl delete namespace {name}), or set OccamSpawner.namespace_prefix "
        "so that students' namespaces get other names"
    )
    if labels.get(MANAGED_BY_LABEL) != MANAGED_BY:
        return (
            f"namespace {name} already exists and Occam did not make it (it lacks the label "
            f"{MANAGED_BY_LABEL}={MANAGED_BY}); the spawner will not take it over for user {username!r}: {fix}"
        )
    owner = annotations.get(USERNAME_ANNOTATION)
    if owner is None:
        owner_label = labels.get(USER_LABEL)
        if owner_label is not None and owner_label == label_value(username):
            return None
        return (
            f"namespace {name} was made by Occam for user label {owner_label!r}, not for user {username!r}; "
            f"the spawner will not hand it to another user: {fix}"
        )
    if owner != username:
        return (
            f"namespace {name} belongs to user {owner!r} (annotation {USERNAME_ANNOTATION}), not to {username!r}; "
            f"the spawner will not hand it to another user: {fix}"
        )
    return None


def service_account(
    username: str, *, prefix: str = NAMESPACE_PREFIX, pull_secrets: Sequence[str] = ()
) -> dict[str, Any]:
    """The notebook pod's ServiceAccount (its token is what the notebook's Kubernetes calls use).

    ``pull_secrets``: names of image pull Secrets in the namespace (:func:`pull_secret_copy`), listed in its
    ``imagePullSecrets``: Kubernetes adds them to every pod that runs as this account and names none
    itself, so the notebook, its executors and batch drivers pull from the private registry.
    """
    account: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _metadata(SERVICE_ACCOUNT, username, namespace_name(username, prefix=prefix)),
    }
    if pull_secrets:
        account["imagePullSecrets"] = [{"name": name} for name in pull_secrets]
    return account


#: The Secret types that hold registry credentials (what a pod's imagePullSecrets may name).
PULL_SECRET_TYPES = ("kubernetes.io/dockerconfigjson", "kubernetes.io/dockercfg")


def pull_secret_copy(username: str, source: Mapping[str, Any], *, prefix: str = NAMESPACE_PREFIX) -> dict[str, Any]:
    """A copy, in the student's namespace, of the image pull Secret ``source`` (a v1 Secret as a dict, read from
    the hub's namespace): its name, type and data, with Occam's labels and nothing else of the original.

    A Secret of any other type raises ValueError: only registry credentials are copied to students, who can
    read every Secret of their namespace.
    """
    metadata = source.get("metadata") or {}
    name = metadata.get("name", "")
    kind = source.get("type")
    if kind not in PULL_SECRET_TYPES:
        raise ValueError(
            f"Secret {name!r} is of type {kind!r}, not an image pull secret ({' or '.join(PULL_SECRET_TYPES)}): "
            "students can read it in their namespace, so only registry credentials are copied; make it with "
            "kubectl create secret docker-registry"
        )
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _metadata(name, username, namespace_name(username, prefix=prefix)),
        "type": kind,
        "data": dict(source.get("data") or {}),
    }


def role_binding(
    username: str, *, cluster_role: str = NOTEBOOK_CLUSTER_ROLE, prefix: str = NAMESPACE_PREFIX
) -> dict[str, Any]:
    """Binds the notebook's ClusterRole (:data:`NOTEBOOK_RULES`, spawner.hub_rbac.notebook_cluster_role) to
    :func:`service_account`, in the student's namespace only."""
    ns = namespace_name(username, prefix=prefix)
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _metadata(NOTEBOOK_BINDING, username, ns),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_role},
        "subjects": [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": ns}],
    }


def hub_role_binding(
    username: str, hub_user: str, *, cluster_role: str = HUB_NAMESPACE_ROLE, prefix: str = NAMESPACE_PREFIX
) -> dict[str, Any]:
    """Binds the hub's in-namespace ClusterRole (spawner.hub_rbac.hub_namespace_cluster_role) to the hub's
    own identity ``hub_user`` (``system:serviceaccount:<namespace>:<name>``), in the student's namespace only."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _metadata(HUB_BINDING, username, namespace_name(username, prefix=prefix)),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": hub_user}],
    }


def resource_quota(
    username: str, limits: CourseLimits, *, gpu_resource: str = GPU_RESOURCE, prefix: str = NAMESPACE_PREFIX
) -> dict[str, Any]:
    """The namespace's ResourceQuota: ``max_executors`` pods plus the notebook, and the course's totals.

    CPU, memory and ephemeral storage are capped both as requests and as limits, so every pod must state
    them (the LimitRange below fills them in for containers that do not). GPUs are an extended resource,
    which Kubernetes quotas count by request only. Secrets, ConfigMaps, Services and claims are counted
    (and claims' storage summed), so a student cannot flood the API server; NodePort and LoadBalancer
    Services are allowed none, as they open the student's pods to the world outside the cluster.
    """
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": _metadata(RESOURCE_QUOTA, username, namespace_name(username, prefix=prefix)),
        "spec": {
            "hard": {
                "pods": str(limits.max_executors + 1),
                "requests.cpu": limits.cpu,
                "requests.memory": limits.memory,
                "limits.cpu": limits.cpu,
                "limits.memory": limits.memory,
                f"requests.{gpu_resource}": str(limits.gpus),
                "requests.ephemeral-storage": limits.ephemeral_storage,
                "limits.ephemeral-storage": limits.ephemeral_storage,
                "requests.storage": limits.storage,
                "persistentvolumeclaims": str(limits.persistent_volume_claims),
                "secrets": str(limits.secrets),
                "configmaps": str(limits.configmaps),
                "services": str(limits.services),
                "services.nodeports": "0",
                "services.loadbalancers": "0",
            }
        },
    }


def _smaller(a: str, b: str) -> str:
    return a if parse_quantity(a) <= parse_quantity(b) else b


def default_ephemeral_storage(limits: CourseLimits) -> str:
    """The ephemeral storage a container that states none gets: an equal share of the namespace's total among
    its ``max_executors + 1`` pods, at most ``executor_max_ephemeral_storage``; so the pod count, whose
    quota message Occam explains, runs out before the storage does."""
    share = parse_quantity(limits.ephemeral_storage) / (limits.max_executors + 1)
    share_mib = int(share) >> 20
    if share_mib < 1 or parse_quantity(limits.executor_max_ephemeral_storage) <= share:
        return limits.executor_max_ephemeral_storage
    return f"{share_mib}Mi"


def limit_range(username: str, limits: CourseLimits, *, prefix: str = NAMESPACE_PREFIX) -> dict[str, Any]:
    """The namespace's LimitRange: no container above the course's per-executor CPU, memory and ephemeral storage.

    A container that states no CPU or memory gets :data:`DEFAULT_CONTAINER_CPU` and
    :data:`DEFAULT_CONTAINER_MEMORY` (or the maximum, if that is lower) as both request and limit, and
    :func:`default_ephemeral_storage`, so the quota can count it: KubeSpawner's notebook, Spark's
    executors and a batch job's driver state CPU and memory but no ephemeral storage.
    """
    cpu = _smaller(DEFAULT_CONTAINER_CPU, limits.executor_max_cpu)
    memory = _smaller(DEFAULT_CONTAINER_MEMORY, limits.executor_max_memory)
    storage = default_ephemeral_storage(limits)
    return {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": _metadata(LIMIT_RANGE, username, namespace_name(username, prefix=prefix)),
        "spec": {
            "limits": [
                {
                    "type": "Container",
                    "max": {
                        "cpu": limits.executor_max_cpu,
                        "memory": limits.executor_max_memory,
                        "ephemeral-storage": limits.executor_max_ephemeral_storage,
                    },
                    "default": {"cpu": cpu, "memory": memory, "ephemeral-storage": storage},
                    "defaultRequest": {"cpu": cpu, "memory": memory, "ephemeral-storage": storage},
                }
            ]
        },
    }


def namespace_objects(
    username: str,
    limits: CourseLimits,
    *,
    hub_namespace: str,
    hub_selector: Mapping[str, str],
    hub_user: str | None = None,
    gpu_resource: str = GPU_RESOURCE,
    prefix: str = NAMESPACE_PREFIX,
    pod_security_level: str = POD_SECURITY_LEVEL,
    api_server_cidrs: Sequence[str] = (),
    dns_cidrs: Sequence[str] = (),
    internet: bool = False,
    notebook_cluster_role: str = NOTEBOOK_CLUSTER_ROLE,
    hub_namespace_role: str = HUB_NAMESPACE_ROLE,
    pull_secrets: Sequence[Mapping[str, Any]] = (),
) -> list[dict[str, Any]]:
    """Everything the student's namespace holds, in the order to create it (the Namespace first, the
    NetworkPolicies of :func:`spawner.network_policy.network_policies` last). ``hub_user``: the hub's own
    identity, bound to ``hub_namespace_role`` in the namespace (None: no such binding, for an admin's
    account that needs none).

    ``pull_secrets``: image pull Secrets read from the hub's namespace; the ServiceAccount names them, and
    their copies (:func:`pull_secret_copy`) come after the hub's RoleBinding, which lets the hub make them
    (:data:`HUB_BOUND_KINDS`).
    """
    access = NetworkAccess(
        hub_namespace=hub_namespace,
        hub_selector=dict(hub_selector),
        api_server_cidrs=tuple(api_server_cidrs),
        dns_cidrs=tuple(dns_cidrs),
        internet=internet,
    )
    ns = namespace_name(username, prefix=prefix)
    hub = (
        []
        if hub_user is None
        else [hub_role_binding(username, hub_user, cluster_role=hub_namespace_role, prefix=prefix)]
    )
    copies = [pull_secret_copy(username, source, prefix=prefix) for source in pull_secrets]
    return [
        namespace(username, prefix=prefix, pod_security_level=pod_security_level),
        service_account(username, prefix=prefix, pull_secrets=[c["metadata"]["name"] for c in copies]),
        role_binding(username, cluster_role=notebook_cluster_role, prefix=prefix),
        *hub,
        *copies,
        resource_quota(username, limits, gpu_resource=gpu_resource, prefix=prefix),
        limit_range(username, limits, prefix=prefix),
        *network_policies(ns, labels(username), access),
    ]
