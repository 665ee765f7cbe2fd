"""What a course's students hold right now, read from their pods: pure functions over the API's pod dicts.

The spawner's course-wide GPU cap (``OccamSpawner.max_gpus_in_use``) and the admin's ``occam course status``
and ``occam course metrics`` count from the same pods with these, so they always agree. A pod counts while it
is neither Succeeded nor Failed (a Pending pod already holds its quota).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from occam.contract import GPU_RESOURCE

#: Pod phases that no longer hold anything.
FINISHED_PHASES = ("Succeeded", "Failed")


def is_live(pod: Mapping[str, Any]) -> bool:
    """Whether ``pod`` still holds what it asked for (not Succeeded or Failed, not being deleted past its end)."""
    return ((pod.get("status") or {}).get("phase") or "Pending") not in FINISHED_PHASES


def pod_gpus(pod: Mapping[str, Any], resource: str = GPU_RESOURCE) -> int:
    """GPUs ``pod`` holds: the sum over its containers of the GPU request (or limit: for an extended resource,
    Kubernetes makes them equal and lets either be given). 0 for a finished pod."""
    if not is_live(pod):
        return 0
    total = 0
    for container in (pod.get("spec") or {}).get("containers") or []:
        resources = container.get("resources") or {}
        amount = (resources.get("requests") or {}).get(resource) or (resources.get("limits") or {}).get(resource)
        if amount is not None:
            total += int(str(amount))
    return total


def gpus_by_namespace(pods: Iterable[Mapping[str, Any]], resource: str = GPU_RESOURCE) -> dict[str, int]:
    """Namespace -> GPUs its live pods hold, for namespaces that hold any, largest first."""
    held: dict[str, int] = {}
    for pod in pods:
        gpus = pod_gpus(pod, resource)
        if gpus:
            namespace = (pod.get("metadata") or {}).get("namespace", "")
            held[namespace] = held.get(namespace, 0) + gpus
    return dict(sorted(held.items(), key=lambda item: (-item[1], item[0])))


def gpu_cap_problem(held: Mapping[str, int], asking: int, cap: int) -> str | None:
    """Why a spawn that will hold ``asking`` GPUs (0 for a notebook that only borrows GPUs for executors) must
    wait under a course-wide ``cap`` (0: none), given ``held`` (:func:`gpus_by_namespace`); None if it may go.

    A notebook that borrows GPUs may start while at least one is free. The message, shown to the student,
    gives counts only: who holds the GPUs is for admins (the hub's log, ``occam course status``).
    """
    if cap <= 0:
        return None
    in_use = sum(held.values())
    needed = max(asking, 1)
    if in_use + needed <= cap:
        return None
    return (
        f"the course's GPUs are all taken: {in_use} of the {cap} it may use at once are held by "
        f"{len(held)} running server(s) and their clusters; try again when some are released (clusters idle "
        "for a while release theirs), or pick a profile without GPUs"
    )


__all__ = ["FINISHED_PHASES", "gpu_cap_problem", "gpus_by_namespace", "is_live", "pod_gpus"]
