"""Pure readings of executor pods (as plain API dicts): why one cannot start, what each cluster uses."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from occam.contract import CLUSTER_LABEL, COMPONENT_LABEL, DRIVER_COMPONENT, GPU_RESOURCE, USER_LABEL
from occam.kubernetes.objects import quantity_to_bytes, quantity_to_millicores

#: Container waiting reasons that will not fix themselves while we wait.
FATAL_WAITING_REASONS = {
    "ErrImagePull": "its image cannot be pulled",
    "ImagePullBackOff": "its image cannot be pulled",
    "InvalidImageName": "its image name is invalid",
    "CreateContainerConfigError": "its container cannot be configured",
    "CreateContainerError": "its container cannot be created",
    "CrashLoopBackOff": "its container keeps crashing",
}


def _name(pod: dict[str, Any]) -> str:
    return str(pod.get("metadata", {}).get("name", "?"))


def start_problem(pods: Iterable[dict[str, Any]], kind: str = "executor pod") -> str | None:
    """The first reason a pod (an executor's, or ``kind``) will not come up by waiting longer, as a sentence;
    else None."""
    for pod in pods:
        status = pod.get("status") or {}
        for condition in status.get("conditions") or []:
            if (
                condition.get("type") == "PodScheduled"
                and condition.get("status") == "False"
                and condition.get("reason") == "Unschedulable"
            ):
                return f"{kind} {_name(pod)} cannot be scheduled: {condition.get('message', 'no reason given')}"
        for container in status.get("containerStatuses") or []:
            waiting = (container.get("state") or {}).get("waiting") or {}
            reason = waiting.get("reason")
            if reason in FATAL_WAITING_REASONS:
                detail = waiting.get("message") or reason
                return f"{kind} {_name(pod)}: {FATAL_WAITING_REASONS[reason]} ({reason}: {detail})"
    return None


def pod_summary(pods: Iterable[dict[str, Any]]) -> str:
    """One line per pod: name, phase and the reason it waits, for start-up diagnostics."""
    lines = []
    for pod in pods:
        status = pod.get("status") or {}
        reasons = [
            ((c.get("state") or {}).get("waiting") or {}).get("reason") for c in status.get("containerStatuses") or []
        ]
        detail = ", ".join(r for r in reasons if r)
        lines.append(f"{_name(pod)}: {status.get('phase', 'Unknown')}" + (f" ({detail})" if detail else ""))
    return "\n".join(lines) or "no executor pod was created"


def usage_by_cluster(pods: Iterable[dict[str, Any]], gpu_resource: str = GPU_RESOURCE) -> dict[str, dict[str, str]]:
    """What each Occam cluster's live pods request, as Kubernetes quantities keyed like ResourceQuota keys.

    The result is the ``usage_by_cluster`` of :func:`occam.kubernetes.quota.check_fits_quota`.
    """
    usage: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for pod in pods:
        cluster = (pod.get("metadata", {}).get("labels") or {}).get(CLUSTER_LABEL)
        if not cluster or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        use = usage[cluster]
        use["pods"] += 1
        for container in pod.get("spec", {}).get("containers", []):
            requests = (container.get("resources") or {}).get("requests") or {}
            limits = (container.get("resources") or {}).get("limits") or {}
            use["requests.cpu"] += quantity_to_millicores(requests.get("cpu", 0))
            use["requests.memory"] += quantity_to_bytes(requests.get("memory", 0))
            use[f"requests.{gpu_resource}"] += int(quantity_to_millicores(limits.get(gpu_resource, 0)) // 1000)
    return {
        name: {
            key: f"{value}m" if key == "requests.cpu" else str(value)  # millicores back to a quantity
            for key, value in values.items()
        }
        for name, values in usage.items()
    }


def clusters_in(pods_: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Occam clusters seen in a namespace's pods: name -> user, executor count, their phases, and the phase of the
    batch job's driver pod (``occam submit`` on Kubernetes; None for a notebook's cluster, whose driver is the
    notebook)."""
    clusters: dict[str, dict[str, Any]] = {}
    for pod in pods_:
        labels = pod.get("metadata", {}).get("labels") or {}
        name = labels.get(CLUSTER_LABEL)
        if not name:
            continue
        entry = clusters.setdefault(
            name, {"user": labels.get(USER_LABEL, "-"), "executors": 0, "phases": {}, "driver": None}
        )
        phase = (pod.get("status") or {}).get("phase", "Unknown")
        if labels.get(COMPONENT_LABEL) == DRIVER_COMPONENT:
            entry["driver"] = phase
            continue
        entry["executors"] += 1
        entry["phases"][phase] = entry["phases"].get(phase, 0) + 1
    return clusters
