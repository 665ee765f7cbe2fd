"""The Kubernetes identity of a node agent the tests run as a host process (as its DaemonSet would run it).

kube-network-policies (:mod:`.netpolicy`) and the volume provisioner (:mod:`.provisioner`) each get a
ServiceAccount in ``kube-system`` bound to a ClusterRole of their upstream rules, and a short-lived token
(TokenRequest) instead of the admin's credentials. Objects left by a killed session are the same objects:
a 409 on create is taken as done, a 404 on delete too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

NAMESPACE = "kube-system"


def create_agent_account(
    admin: Any, name: str, rules: list[dict[str, Any]], *, also: Sequence[Callable[[], Any]] = ()
) -> str:
    """Make ``name``'s ServiceAccount, ClusterRole (``rules``) and binding, then each of ``also``; its token."""
    from kubernetes import client

    core, rbac = client.CoreV1Api(admin), client.RbacAuthorizationV1Api(admin)
    meta = {"name": name}
    binding = {
        "metadata": meta,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": NAMESPACE}],
    }
    for create in (
        lambda: core.create_namespaced_service_account(NAMESPACE, {"metadata": meta}),
        lambda: rbac.create_cluster_role({"metadata": meta, "rules": rules}),
        lambda: rbac.create_cluster_role_binding(binding),
        *also,
    ):
        try:
            create()
        except client.ApiException as exc:
            if exc.status != 409:
                raise
    request = {"spec": {"expirationSeconds": 3600}}
    return str(core.create_namespaced_service_account_token(name, NAMESPACE, request).status.token)


def delete_agent_account(admin: Any, name: str, *, also: Sequence[Callable[[], Any]] = ()) -> None:
    """Remove what :func:`create_agent_account` made (``also`` first); what is already gone is fine."""
    from kubernetes import client

    core, rbac = client.CoreV1Api(admin), client.RbacAuthorizationV1Api(admin)
    for delete in (
        *also,
        lambda: rbac.delete_cluster_role_binding(name),
        lambda: rbac.delete_cluster_role(name),
        lambda: core.delete_namespaced_service_account(name, NAMESPACE),
    ):
        with contextlib.suppress(client.ApiException):
            delete()
