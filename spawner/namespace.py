"""Pure builders of a student's namespace and what the notebook needs in it: plain dicts, in apply order.

Each student gets a namespace of their own (:func:`namespace_name`). In it, the notebook pod runs as the
ServiceAccount :data:`SERVICE_ACCOUNT`, bound to a Role (:func:`role`) that allows exactly what
``start_cluster`` does there and nothing cluster-wide; a ResourceQuota and a LimitRange carry the course's
:class:`~spawner.limits.CourseLimits`; a NetworkPolicy lets only the student's own executors reach the
notebook's Spark ports, and only the hub's proxy reach Jupyter. Every object is labelled
``app.kubernetes.io/managed-by: occam-spawner`` and ``occam.io/user``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

from occam.contract import (
    APP_LABEL,
    APP_NAME,
    BLOCK_MANAGER_PORT,
    COMPONENT_LABEL,
    DRIVER_PORT,
    GPU_RESOURCE,
    MANAGED_BY_LABEL,
    NOTEBOOK_COMPONENT,
    UI_PORT,
    USER_LABEL,
)
from occam.kubernetes.objects import label_value, parse_quantity
from spawner.limits import CourseLimits

MANAGED_BY = "occam-spawner"

NAMESPACE_PREFIX = "occam-"
#: The account the notebook pod runs as; the Role below is bound to it.
SERVICE_ACCOUNT = "occam-notebook"
ROLE = "occam-notebook"
RESOURCE_QUOTA = "occam-quota"
LIMIT_RANGE = "occam-limits"
NETWORK_POLICY = "occam-notebook"

#: Labels the spawner puts on the notebook pod; the NetworkPolicy selects the pod by them.
NOTEBOOK_LABELS: dict[str, str] = {APP_LABEL: APP_NAME, COMPONENT_LABEL: NOTEBOOK_COMPONENT}
#: Pods of the namespace allowed to reach the notebook's Spark ports: every pod Occam makes (executors).
OCCAM_PODS: dict[str, str] = {APP_LABEL: APP_NAME}

#: The Jupyter server's port in the notebook pod, reached by the hub and its proxy.
NOTEBOOK_PORT = 8888

#: A container that sets no CPU or memory gets this much (capped at the course's per-container maximum).
DEFAULT_CONTAINER_CPU = "1"
DEFAULT_CONTAINER_MEMORY = "1Gi"

_DNS_LABEL_MAX = 63
_HASH_LENGTH = 8
_PREFIX_MAX = 30
_PREFIX = re.compile(rf"[a-z][a-z0-9-]{{0,{_PREFIX_MAX - 1}}}")
_HASHED = re.compile(rf"(.*-)?[0-9a-f]{{{_HASH_LENGTH}}}")

_CORE = ""
#: What ``start_cluster`` does in the student's namespace, with the notebook's own account: the backend's
#: calls (occam/kubernetes/api.py: list ResourceQuotas, LimitRanges, pods and events; create Secrets;
#: delete pods and Secrets by label) and Spark's (create, get, watch, list and delete executor pods; its
#: executor ConfigMap, deleted by label when the application stops; on-demand PersistentVolumeClaims).
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
    enough is kept as it is. Anything else is cleaned up and gets ``-`` and 8 hex digits of the
    username's SHA-256, so users whose names clean up alike (``Ada``, ``ada.``, ``ada``) still get
    different namespaces. So does a name that already ends like that (``ada-0123abcd``), so that no
    user can pick a name equal to another's hashed namespace.
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


def namespace(username: str, *, prefix: str = NAMESPACE_PREFIX) -> dict[str, Any]:
    """The student's v1 Namespace."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": _metadata(namespace_name(username, prefix=prefix), username, None),
    }


def service_account(username: str, *, prefix: str = NAMESPACE_PREFIX) -> dict[str, Any]:
    """The notebook pod's ServiceAccount (its token is what the notebook's Kubernetes calls use)."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _metadata(SERVICE_ACCOUNT, username, namespace_name(username, prefix=prefix)),
    }


def role(username: str, *, prefix: str = NAMESPACE_PREFIX) -> dict[str, Any]:
    """The Role with :data:`NOTEBOOK_RULES`, in the student's namespace only."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _metadata(ROLE, username, namespace_name(username, prefix=prefix)),
        "rules": [{key: list(value) for key, value in rule.items()} for rule in NOTEBOOK_RULES],
    }


def role_binding(username: str, *, prefix: str = NAMESPACE_PREFIX) -> dict[str, Any]:
    """Binds :func:`role` to :func:`service_account`, both in the student's namespace."""
    ns = namespace_name(username, prefix=prefix)
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _metadata(ROLE, username, ns),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": ROLE},
        "subjects": [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": ns}],
    }


def resource_quota(
    username: str, limits: CourseLimits, *, gpu_resource: str = GPU_RESOURCE, prefix: str = NAMESPACE_PREFIX
) -> dict[str, Any]:
    """The namespace's ResourceQuota: ``max_executors`` pods plus the notebook, and the course's totals.

    CPU and memory are capped both as requests and as limits, so every pod must state them (the
    LimitRange below fills them in for containers that do not). GPUs are an extended resource, which
    Kubernetes quotas count by request only.
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
            }
        },
    }


def _smaller(a: str, b: str) -> str:
    return a if parse_quantity(a) <= parse_quantity(b) else b


def limit_range(username: str, limits: CourseLimits, *, prefix: str = NAMESPACE_PREFIX) -> dict[str, Any]:
    """The namespace's LimitRange: no container above the course's per-executor CPU and memory.

    A container that states no CPU or memory gets :data:`DEFAULT_CONTAINER_CPU` and
    :data:`DEFAULT_CONTAINER_MEMORY` (or the maximum, if that is lower) as both request and limit, so the
    quota can count it.
    """
    cpu = _smaller(DEFAULT_CONTAINER_CPU, limits.executor_max_cpu)
    memory = _smaller(DEFAULT_CONTAINER_MEMORY, limits.executor_max_memory)
    return {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": _metadata(LIMIT_RANGE, username, namespace_name(username, prefix=prefix)),
        "spec": {
            "limits": [
                {
                    "type": "Container",
                    "max": {"cpu": limits.executor_max_cpu, "memory": limits.executor_max_memory},
                    "default": {"cpu": cpu, "memory": memory},
                    "defaultRequest": {"cpu": cpu, "memory": memory},
                }
            ]
        },
    }


def _tcp(ports: Sequence[int]) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": port} for port in ports]


def network_policy(
    username: str,
    *,
    hub_namespace: str,
    hub_selector: Mapping[str, str],
    notebook_selector: Mapping[str, str] | None = None,
    spark_ports: Sequence[int] = (DRIVER_PORT, BLOCK_MANAGER_PORT, UI_PORT),
    notebook_port: int = NOTEBOOK_PORT,
    horovod_ports: bool = True,
    prefix: str = NAMESPACE_PREFIX,
) -> dict[str, Any]:
    """Who may connect to the notebook pod: nobody, except as listed.

    - Occam's pods in the same namespace (``app.kubernetes.io/name=occam``: the student's executors) on
      the Spark driver, block manager and UI ports (``spark_ports``).
    - Pods matching ``hub_selector`` in ``hub_namespace`` (the hub and its proxy) on ``notebook_port``.
    - With ``horovod_ports`` (the default), the same executors on every other unprivileged TCP port but
      ``notebook_port``: ``cluster.fit`` runs ``horovod.spark.run``, whose driver and rendezvous services
      listen on the notebook pod on ports chosen at random, and the ranks in the executors connect to
      them. Pass ``horovod_ports=False`` for the Spark ports alone (then ``cluster.fit`` cannot work
      under a CNI that enforces network policies).

    Executor pods are not selected: this policy guards the notebook, where the student's Jupyter runs.
    """
    if not hub_selector:
        raise ValueError("hub_selector must name at least one label of the hub's pods, or every pod would match")
    executors = [{"podSelector": {"matchLabels": dict(OCCAM_PODS)}}]
    ingress: list[dict[str, Any]] = [
        {"from": executors, "ports": _tcp(spark_ports)},
        {
            "from": [
                {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": hub_namespace}},
                    "podSelector": {"matchLabels": dict(hub_selector)},
                }
            ],
            "ports": _tcp([notebook_port]),
        },
    ]
    if horovod_ports:
        ranges = [(1024, notebook_port - 1), (notebook_port + 1, 65535)]
        ingress.append(
            {
                "from": executors,
                "ports": [{"protocol": "TCP", "port": low, "endPort": high} for low, high in ranges if low <= high],
            }
        )
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(NETWORK_POLICY, username, namespace_name(username, prefix=prefix)),
        "spec": {
            "podSelector": {
                "matchLabels": dict(notebook_selector if notebook_selector is not None else NOTEBOOK_LABELS)
            },
            "policyTypes": ["Ingress"],
            "ingress": ingress,
        },
    }


def namespace_objects(
    username: str,
    limits: CourseLimits,
    *,
    hub_namespace: str,
    hub_selector: Mapping[str, str],
    gpu_resource: str = GPU_RESOURCE,
    notebook_selector: Mapping[str, str] | None = None,
    horovod_ports: bool = True,
    prefix: str = NAMESPACE_PREFIX,
) -> list[dict[str, Any]]:
    """Everything the student's namespace holds, in the order to create it (the Namespace first)."""
    return [
        namespace(username, prefix=prefix),
        service_account(username, prefix=prefix),
        role(username, prefix=prefix),
        role_binding(username, prefix=prefix),
        resource_quota(username, limits, gpu_resource=gpu_resource, prefix=prefix),
        limit_range(username, limits, prefix=prefix),
        network_policy(
            username,
            hub_namespace=hub_namespace,
            hub_selector=hub_selector,
            notebook_selector=notebook_selector,
            horovod_ports=horovod_ports,
            prefix=prefix,
        ),
    ]
