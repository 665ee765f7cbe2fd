"""What the hub's own account may do in the cluster: the ClusterRoles OccamSpawner needs, as pure builders.

The hub makes each student's namespace and the objects in it, creates and watches notebook pods,
deletes executors when a server stops, and reads nodes to fail a spawn no node could take. It does not
hold what it hands out:

- The notebook's rules (:data:`spawner.namespace.NOTEBOOK_RULES`) are the ClusterRole
  :data:`NOTEBOOK_CLUSTER_ROLE` (:func:`notebook_cluster_role`), which the spawner binds in each student
  namespace with a RoleBinding. Kubernetes lets an account make such a binding when it may ``bind``
  that ClusterRole; the hub may bind it, and only it, so it never holds Secrets or pod creation across
  the cluster itself.
- What the hub does *inside* a student namespace (create and delete the notebook pod and the home
  volume's claim, delete executors and their Secrets) is the ClusterRole :data:`HUB_NAMESPACE_ROLE`
  (:func:`hub_namespace_cluster_role`), which the spawner binds to the hub itself in each namespace it
  manages. So the hub touches Secrets and creates pods only in its own namespace (Zero to JupyterHub's
  Role) and in Occam's. The copies of the course's image pull Secrets are applied through this binding
  too; the hub reads the originals in its own namespace only, by name (:func:`pull_secret_reader_rules`,
  the chart's pull-secret Role).

Cluster-wide (:data:`SPAWNER_RULES`) it keeps only what cannot be per namespace: making namespaces and
the objects the spawner applies in them, reading (never writing) pods and events (KubeSpawner watches
every student namespace at once), listing nodes. The chart's admission policy then limits the hub's
RoleBindings to Occam's namespaces and its namespace updates to those it made
(:func:`spawner.admission_policy.hub_admission_objects`). Nothing here is a wildcard.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from occam.contract import MANAGED_BY_LABEL
from spawner.namespace import HUB_NAMESPACE_ROLE, MANAGED_BY, NOTEBOOK_CLUSTER_ROLE, NOTEBOOK_RULES

CLUSTER_ROLE = "occam-hub"

_CORE = ""
_RBAC = "rbac.authorization.k8s.io"
_NETWORKING = "networking.k8s.io"

#: What the hub does in a student namespace, bound there to the hub by the spawner (the home volume's
#: claim is KubeSpawner's, made in the student's namespace).
HUB_NAMESPACE_RULES: list[dict[str, Any]] = [
    {"apiGroups": [_CORE], "resources": ["pods"], "verbs": ["create", "delete", "deletecollection"]},
    # create, patch: the copies of the hub's image pull Secrets (spawner.namespace.pull_secret_copy),
    # server-side applied; deletecollection: executors' Secrets when a server stops.
    {"apiGroups": [_CORE], "resources": ["secrets"], "verbs": ["create", "deletecollection", "patch"]},
    # patch: the student's work volume claim (spawner.work_volume), server-side applied.
    {
        "apiGroups": [_CORE],
        "resources": ["persistentvolumeclaims"],
        "verbs": ["create", "delete", "get", "list", "patch"],
    },
]

#: What the spawner does across the cluster (see the module); :func:`hub_rules` adds ``bind``.
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
    {"apiGroups": [_RBAC], "resources": ["rolebindings"], "verbs": ["create", "patch"]},
    # delete: an optional policy the course's settings no longer want (spawner.network_policy.OPTIONAL).
    {"apiGroups": [_NETWORKING], "resources": ["networkpolicies"], "verbs": ["create", "delete", "patch"]},
    # KubeSpawner watches notebook pods and their events in every student namespace at once: read-only.
    {"apiGroups": [_CORE], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": [_CORE], "resources": ["events"], "verbs": ["list", "watch"]},
    # The node-fit check before a spawn (spawner.placement): read-only.
    {"apiGroups": [_CORE], "resources": ["nodes"], "verbs": ["list"]},
]


def hub_rules(
    notebook_role: str = NOTEBOOK_CLUSTER_ROLE, namespace_role: str = HUB_NAMESPACE_ROLE
) -> list[dict[str, Any]]:
    """The hub's cluster-wide rules: :data:`SPAWNER_RULES` and ``bind`` on the two ClusterRoles it hands out."""
    rules = copy.deepcopy(SPAWNER_RULES)
    rules.append(
        {
            "apiGroups": [_RBAC],
            "resources": ["clusterroles"],
            "verbs": ["bind"],
            "resourceNames": sorted({notebook_role, namespace_role}),
        }
    )
    return rules


def pull_secret_reader_rules(names: Sequence[str]) -> list[dict[str, Any]]:
    """The hub's rules in its own namespace for ``occam.imagePullSecrets`` (OccamSpawner.copied_pull_secrets):
    ``get`` on those Secrets by name, nothing else (the chart's pull-secret Role). Empty without names."""
    if not names:
        return []
    return [{"apiGroups": [_CORE], "resources": ["secrets"], "verbs": ["get"], "resourceNames": sorted(set(names))}]


def _cluster_role(name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name, "labels": {MANAGED_BY_LABEL: MANAGED_BY}},
        "rules": copy.deepcopy(rules),
    }


def hub_cluster_role(
    name: str = CLUSTER_ROLE, *, notebook_role: str = NOTEBOOK_CLUSTER_ROLE, namespace_role: str = HUB_NAMESPACE_ROLE
) -> dict[str, Any]:
    """The v1 ClusterRole to bind to the hub's ServiceAccount (a ClusterRoleBinding, as students' namespaces vary)."""
    return _cluster_role(name, hub_rules(notebook_role, namespace_role))


def notebook_cluster_role(name: str = NOTEBOOK_CLUSTER_ROLE) -> dict[str, Any]:
    """The notebook's rules as a ClusterRole, bound per student namespace (never cluster-wide)."""
    return _cluster_role(name, NOTEBOOK_RULES)


def hub_namespace_cluster_role(name: str = HUB_NAMESPACE_ROLE) -> dict[str, Any]:
    """The hub's rules inside a student namespace, bound there to the hub by the spawner."""
    return _cluster_role(name, HUB_NAMESPACE_RULES)


def hub_cluster_role_binding(service_account: str, namespace: str, *, role: str = CLUSTER_ROLE) -> dict[str, Any]:
    """Binds :func:`hub_cluster_role` to the hub's ServiceAccount ``namespace/service_account``."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": role, "labels": {MANAGED_BY_LABEL: MANAGED_BY}},
        "roleRef": {"apiGroup": _RBAC, "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": service_account, "namespace": namespace}],
    }


__all__ = [
    "CLUSTER_ROLE",
    "HUB_NAMESPACE_RULES",
    "SPAWNER_RULES",
    "hub_cluster_role",
    "hub_cluster_role_binding",
    "hub_namespace_cluster_role",
    "hub_rules",
    "notebook_cluster_role",
    "pull_secret_reader_rules",
]
