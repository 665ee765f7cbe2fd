"""What the hub's own account may do in the cluster: the ClusterRole OccamSpawner needs, as a pure builder.

The hub makes each student's namespace and the objects in it, creates and watches notebook pods in
every student namespace, deletes executors when a server stops, and reads nodes to fail a spawn no node
could take. Kubernetes refuses to let an account create a Role granting permissions it does not hold
itself, so the hub's role also holds every rule of the notebook's Role
(:data:`spawner.namespace.NOTEBOOK_RULES`). Nothing here is a wildcard, and the only cluster-scoped
resources are namespaces (get, create, patch: server-side apply) and nodes (list, read-only).
"""

from __future__ import annotations

import copy
from typing import Any

from occam.contract import MANAGED_BY_LABEL
from spawner.namespace import MANAGED_BY, NOTEBOOK_RULES

CLUSTER_ROLE = "occam-hub"

_CORE = ""
_RBAC = "rbac.authorization.k8s.io"
_NETWORKING = "networking.k8s.io"

#: What the spawner itself does, besides holding the notebook's rules (see :func:`hub_rules`).
SPAWNER_RULES: list[dict[str, Any]] = [
    # prepare_namespace: server-side apply of the namespace and its objects (spawner.apply), which is a
    # PATCH, and also needs "create" when it makes the object; "get": an existing namespace is read first,
    # and taken over only if Occam made it for the same user (spawner.apply.check_adoption).
    {"apiGroups": [_CORE], "resources": ["namespaces"], "verbs": ["create", "get", "patch"]},
    {
        "apiGroups": [_CORE],
        "resources": ["serviceaccounts", "resourcequotas", "limitranges"],
        "verbs": ["create", "patch"],
    },
    {"apiGroups": [_RBAC], "resources": ["roles", "rolebindings"], "verbs": ["create", "patch"]},
    # delete: an optional policy the course's settings no longer want (spawner.network_policy.OPTIONAL).
    {"apiGroups": [_NETWORKING], "resources": ["networkpolicies"], "verbs": ["create", "delete", "patch"]},
    # KubeSpawner watches notebook pods and their events in every student namespace at once.
    {"apiGroups": [_CORE], "resources": ["pods"], "verbs": ["get", "list", "watch", "create", "delete"]},
    {"apiGroups": [_CORE], "resources": ["events"], "verbs": ["list", "watch"]},
    # The node-fit check before a spawn (spawner.placement): read-only.
    {"apiGroups": [_CORE], "resources": ["nodes"], "verbs": ["list"]},
]


def hub_rules() -> list[dict[str, Any]]:
    """The hub's rules: :data:`SPAWNER_RULES` merged with the notebook's, one rule per (group, resource)."""
    merged: dict[tuple[str, str], list[str]] = {}
    for rule in [*SPAWNER_RULES, *NOTEBOOK_RULES]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                verbs = merged.setdefault((group, resource), [])
                verbs.extend(verb for verb in rule["verbs"] if verb not in verbs)
    return [
        {"apiGroups": [group], "resources": [resource], "verbs": sorted(verbs)}
        for (group, resource), verbs in sorted(merged.items())
    ]


def hub_cluster_role(name: str = CLUSTER_ROLE) -> dict[str, Any]:
    """The v1 ClusterRole to bind to the hub's ServiceAccount (a ClusterRoleBinding, as students' namespaces vary)."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name, "labels": {MANAGED_BY_LABEL: MANAGED_BY}},
        "rules": copy.deepcopy(hub_rules()),
    }


def hub_cluster_role_binding(service_account: str, namespace: str, *, role: str = CLUSTER_ROLE) -> dict[str, Any]:
    """Binds :func:`hub_cluster_role` to the hub's ServiceAccount ``namespace/service_account``."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": role, "labels": {MANAGED_BY_LABEL: MANAGED_BY}},
        "roleRef": {"apiGroup": _RBAC, "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": service_account, "namespace": namespace}],
    }


__all__ = ["CLUSTER_ROLE", "SPAWNER_RULES", "hub_cluster_role", "hub_cluster_role_binding", "hub_rules"]
