"""Whether the cluster has room for a student's server: some node that could ever run the notebook pod
(``OccamSpawner.check_node_fit``), and GPUs left under the course-wide cap (``OccamSpawner.max_gpus_in_use``).

The refusals carry their reason to the student: JupyterHub shows ``jupyterhub_message`` on the spawn page,
and its REST API answers with ``log_message % args``, so neither is a bare "error".
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from occam.contract import APP_LABEL, APP_NAME, GPU_RESOURCE
from occam.kubernetes.api import REQUEST_TIMEOUT_SECONDS
from occam.kubernetes.usage import gpu_cap_problem, gpus_by_namespace


class CourseGpusTaken(RuntimeError):
    """The course-wide GPU cap is reached; the message (shown to the student) says so, with counts only."""

    log_message = "%s"

    @property
    def jupyterhub_message(self) -> str:
        return str(self)


class UnplaceableServer(RuntimeError):
    """No node of the cluster could ever run the notebook pod; the message (shown to the student) says why."""

    # JupyterHub shows ``jupyterhub_message`` on the spawn page, and its REST API answers with
    # ``log_message % args``: both carry the reason instead of a bare "error".
    log_message = "%s"

    @property
    def jupyterhub_message(self) -> str:
        return str(self)


def requested_gpus(limits: Mapping[str, Any] | None, guarantees: Mapping[str, Any] | None) -> int:
    """GPUs a pod asks for, from KubeSpawner's ``extra_resource_limits`` (else ``extra_resource_guarantees``)."""
    amount = (limits or {}).get(GPU_RESOURCE) or (guarantees or {}).get(GPU_RESOURCE)
    return int(str(amount)) if amount else 0


async def ensure_course_gpus(api: Any, namespace: str, asking: int, cap: int, log: Any, user: str) -> None:
    """Raise :class:`CourseGpusTaken` if a server in ``namespace`` holding ``asking`` GPUs (0: one that only
    borrows GPUs for executors) would pass ``cap``, counting every Occam pod of the cluster but its own
    namespace's (``api``: KubeSpawner's kubernetes_asyncio CoreV1Api)."""
    found = await asyncio.wait_for(
        api.list_pod_for_all_namespaces(label_selector=f"{APP_LABEL}={APP_NAME}"), REQUEST_TIMEOUT_SECONDS
    )
    pods = api.api_client.sanitize_for_serialization(found.items)
    held = gpus_by_namespace(pod for pod in pods if pod["metadata"]["namespace"] != namespace)
    problem = gpu_cap_problem(held, asking, cap)
    if problem is not None:
        # The names are for admins only: the log, not the student's message.
        holders = ", ".join(f"{name} ({gpus})" for name, gpus in held.items())
        log.warning("Refusing %s: course GPU cap %s reached; held by %s", user, cap, holders)
        raise CourseGpusTaken(problem)


async def list_nodes(api: Any, log: Any) -> list[dict[str, Any]] | None:
    """Every node as a dict; None (with a warning) when the hub may not list nodes or the API server is slow."""
    from kubernetes_asyncio.client.rest import ApiException

    try:
        found = await asyncio.wait_for(api.list_node(), REQUEST_TIMEOUT_SECONDS)
    except ApiException as exc:
        if exc.status not in (401, 403):
            raise
        log.warning(
            "Skipping the node-fit check: the hub may not list nodes (%s %s); grant it 'list nodes' "
            "(see docs/spawner.md) or set OccamSpawner.check_node_fit = False",
            exc.status,
            exc.reason,
        )
        return None
    except TimeoutError:
        # The check only saves a student from waiting; a slow API server must not fail the spawn.
        log.warning("Skipping the node-fit check: listing nodes took over %s s", REQUEST_TIMEOUT_SECONDS)
        return None
    nodes: list[dict[str, Any]] = api.api_client.sanitize_for_serialization(found.items)
    return nodes


__all__ = ["CourseGpusTaken", "UnplaceableServer", "ensure_course_gpus", "list_nodes", "requested_gpus"]
