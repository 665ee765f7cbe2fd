"""Checks of a cluster request against a namespace's ResourceQuotas and LimitRanges, before anything is made.

Pure: the objects come in as the dicts the Kubernetes API returns (``status.hard``/``status.used`` of a
ResourceQuota, ``spec.limits`` of a LimitRange). A request that cannot fit raises
:class:`~occam.errors.ConfigError` saying what is in the way and what to ask for instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from occam.contract import GPU_RESOURCE
from occam.errors import ConfigError
from occam.kubernetes.objects import (
    MEMORY_OVERHEAD_FACTOR,
    MEMORY_OVERHEAD_MIN_MIB,
    executor_pod_memory_bytes,
    memory_overhead_mib,
    quantity_to_bytes,
    quantity_to_millicores,
)
from occam.spec import ClusterSpec

DEFAULT_GPU_RESOURCE = GPU_RESOURCE
_MIB = 1 << 20


def format_bytes(amount: int) -> str:
    """A memory amount in Kubernetes notation, as ``kubectl describe quota`` shows it: ``4Gi``, ``1536Mi``."""
    for suffix, unit in (("Gi", 1 << 30), ("Mi", _MIB), ("Ki", 1 << 10)):
        if amount >= unit and amount % unit == 0:
            return f"{amount // unit}{suffix}"
    return str(amount)


def _format_cores(millicores: int) -> str:
    return str(millicores // 1000) if millicores % 1000 == 0 else f"{millicores / 1000:g}"


@dataclass(frozen=True)
class _Amount:
    """How one kind of resource is counted (in integers: pods, millicores, bytes, GPUs) and written."""

    parse: Callable[[Any], int]
    number: Callable[[int], str]  # the bare amount: "2", "2.5", "4Gi"
    singular: str
    plural: str
    counted: bool  # whether "2 are in use" reads right (GPUs, pods) rather than "4Gi is in use"
    per_executor: int
    one: int = 1  # the amount written in the singular: 1, or 1000 millicores

    def describe(self, amount: int) -> str:
        """The amount with its unit: "1 GPU", "2.5 cores", "4Gi of memory"."""
        return f"{self.number(amount)} {self.singular if amount == self.one else self.plural}"


def _cores(spec: ClusterSpec) -> _Amount:
    return _Amount(quantity_to_millicores, _format_cores, "core", "cores", False, spec.cores * 1000, one=1000)


def _memory(spec: ClusterSpec) -> _Amount:
    return _Amount(quantity_to_bytes, format_bytes, "of memory", "of memory", False, executor_pod_memory_bytes(spec))


def _count(singular: str, plural: str, per_executor: int) -> _Amount:
    # A count is a quantity without a unit ("4", or even "4k").
    return _Amount(quantity_to_bytes, str, singular, plural, True, per_executor)


def _quota_keys(spec: ClusterSpec, gpu_resource: str) -> dict[str, tuple[_Amount, tuple[str, ...]]]:
    """Quota keys Occam checks -> (what one executor pod takes, keys of a cluster's use in usage_by_cluster).

    Executor pods set limits equal to requests, so a cluster's requests stand for its limits.
    """
    pods, cores, memory = _count("executor pod", "executor pods", 1), _cores(spec), _memory(spec)
    gpu_key = f"requests.{gpu_resource}"
    return {
        "pods": (pods, ("pods", "count/pods")),
        "count/pods": (pods, ("pods", "count/pods")),
        "requests.cpu": (cores, ("requests.cpu", "cpu")),
        "cpu": (cores, ("requests.cpu", "cpu")),
        "limits.cpu": (cores, ("limits.cpu", "requests.cpu", "cpu")),
        "requests.memory": (memory, ("requests.memory", "memory")),
        "memory": (memory, ("requests.memory", "memory")),
        "limits.memory": (memory, ("limits.memory", "requests.memory", "memory")),
        gpu_key: (_count("GPU", "GPUs", 1 if spec.gpu else 0), (gpu_key,)),
    }


def check_fits_quota(
    spec: ClusterSpec,
    quotas: list[dict[str, Any]],
    limit_ranges: list[dict[str, Any]],
    usage_by_cluster: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    gpu_resource: str = DEFAULT_GPU_RESOURCE,
) -> None:
    """Refuse a cluster that the namespace's LimitRanges or ResourceQuotas would stop, naming what is in the way.

    Checks ``pods``, ``requests.cpu``/``cpu``, ``limits.cpu``, ``requests.memory``/``memory``,
    ``limits.memory`` and ``requests.<gpu_resource>`` against ``status.hard`` minus ``status.used``, and
    one executor against each LimitRange's per-container and per-pod ``max`` and ``min``.
    ``usage_by_cluster`` maps each running Occam cluster in the namespace to what it uses, by quota key
    (``"requests.nvidia.com/gpu"``, ``"requests.cpu"``, ``"requests.memory"``, ``"pods"``), so the
    message can say which cluster to stop. Quotas scoped to pods unlike executor pods (best-effort,
    terminating, with a priority class) are skipped. Every problem found is in the one error.
    """
    problems = _limit_range_problems(spec, limit_ranges, gpu_resource)
    keys = _quota_keys(spec, gpu_resource)
    for quota in quotas:
        if not _applies_to_executors(quota):
            continue
        name = quota.get("metadata", {}).get("name", "")
        status = quota.get("status") or {}
        hard = status.get("hard") or quota.get("spec", {}).get("hard") or {}
        used = status.get("used") or {}
        for key, limit in hard.items():
            if key not in keys or keys[key][0].per_executor == 0:
                continue
            amount, usage_keys = keys[key]
            usage = {cluster: _use(amount, usage_keys, use) for cluster, use in (usage_by_cluster or {}).items()}
            problem = _quota_problem(spec, amount, amount.parse(limit), amount.parse(used.get(key, 0)), usage)
            if problem:
                problems.append(f"{problem} (ResourceQuota {name!r}, {key})")
    if len(problems) == 1:
        raise ConfigError(problems[0])
    if problems:
        raise ConfigError("this cluster does not fit your namespace's limits:\n- " + "\n- ".join(problems))


def _quota_problem(spec: ClusterSpec, amount: _Amount, hard: int, used: int, usage: dict[str, int]) -> str | None:
    """E.g. "you asked for 4 GPUs; your quota allows 2 and 1 is in use by cluster occam-ab12cd34; ..."."""
    wanted = amount.per_executor * spec.n
    if used + wanted <= hard:
        return None
    message = f"you asked for {amount.describe(wanted)}; your quota allows {amount.number(hard)}"
    users = sorted(cluster for cluster, use in usage.items() if use > 0)
    if used > 0:
        verb = "are" if amount.counted and used != 1 else "is"
        message += f" and {amount.number(used)} {verb} in use"
        if users:
            message += f" by cluster{'s' if len(users) > 1 else ''} {', '.join(users)}"
            if sum(usage[cluster] for cluster in users) < used:
                message += " and by other pods (your notebook among them)"
    fitting = max(hard - used, 0) // amount.per_executor
    advice = [f"ask for n={fitting} or fewer"] if fitting >= 1 else []
    if users:
        advice.append(f"stop {'them' if len(users) > 1 else 'it'} first with cluster.stop()")
    if not advice:
        advice.append("ask for less per executor, or ask your instructor for a larger quota")
    return f"{message}; {', or '.join(advice)}"


def _use(amount: _Amount, usage_keys: tuple[str, ...], use: Mapping[str, Any]) -> int:
    for key in usage_keys:
        if key in use:
            return amount.parse(use[key])
    return 0


def _applies_to_executors(quota: dict[str, Any]) -> bool:
    """Whether a quota counts executor pods, which have requests, no deadline and no priority class."""
    spec = quota.get("spec") or {}
    excluded = {"BestEffort", "Terminating", "PriorityClass", "CrossNamespacePodAffinity"}
    if excluded & set(spec.get("scopes") or []):
        return False
    for expression in (spec.get("scopeSelector") or {}).get("matchExpressions") or []:
        scope, operator = expression.get("scopeName"), expression.get("operator")
        if scope == "PriorityClass" and operator not in ("In", "Exists"):
            continue  # NotIn and DoesNotExist also match pods without a priority class
        if scope in excluded:
            return False
    return True


def _limit_range_problems(spec: ClusterSpec, limit_ranges: list[dict[str, Any]], gpu_resource: str) -> list[str]:
    """One executor pod (one container) against each LimitRange's ``Container`` and ``Pod`` bounds."""
    amounts = {"cpu": _cores(spec), "memory": _memory(spec)}
    if spec.gpu:
        amounts[gpu_resource] = _count("GPU", "GPUs", 1)
    problems = []
    for limit_range in limit_ranges:
        name = limit_range.get("metadata", {}).get("name", "")
        for item in (limit_range.get("spec") or {}).get("limits") or []:
            kind = item.get("type", "")
            if kind not in ("Container", "Pod"):
                continue
            where = f"LimitRange {name!r} allows at most"
            for resource, amount in amounts.items():
                need = amount.per_executor
                if resource in (item.get("max") or {}) and need > (bound := amount.parse(item["max"][resource])):
                    problems.append(
                        f"each executor needs {amount.describe(need)}{_memory_detail(spec, resource)}, but "
                        f"{where} {amount.describe(bound)} per {kind.lower()}; {_smaller(resource, bound)}"
                    )
                if resource in (item.get("min") or {}) and need < (floor := amount.parse(item["min"][resource])):
                    problems.append(
                        f"each executor has {amount.describe(need)}, but LimitRange {name!r} requires at least "
                        f"{amount.describe(floor)} per {kind.lower()}; {_larger(resource, floor)}"
                    )
    return problems


def _memory_detail(spec: ClusterSpec, resource: str) -> str:
    if resource != "memory":
        return ""
    return f" (memory={spec.memory!r} plus Spark's overhead: 10%, at least {MEMORY_OVERHEAD_MIN_MIB}Mi)"


def _smaller(resource: str, bound: int) -> str:
    if resource == "cpu" and bound >= 1000:
        return f"ask for cores={bound // 1000} or fewer"
    if resource == "memory" and (largest := largest_executor_memory_mib(bound)) >= 256:
        return f"ask for memory='{largest}m' or less"
    if resource not in ("cpu", "memory"):
        return "use gpu=False, or ask your instructor to allow a GPU per executor"
    return "ask your instructor to raise the limit"


def _larger(resource: str, floor: int) -> str:
    if resource == "cpu":
        return f"ask for cores={-(-floor // 1000)} or more"
    if resource == "memory":
        return "ask for more memory per executor"
    return "ask your instructor about this limit"


def largest_executor_memory_mib(pod_bytes: int) -> int:
    """The largest executor memory in MiB whose pod, Spark's overhead included, fits in ``pod_bytes``; 0 if none."""
    budget = pod_bytes // _MIB
    # Above the answer: the overhead is at least 384 MiB, and more than 10% of the heap less 1 MiB.
    heap = min(budget - MEMORY_OVERHEAD_MIN_MIB, int((budget + 1) / (1 + MEMORY_OVERHEAD_FACTOR)) + 1)
    while heap > 0 and heap + memory_overhead_mib(heap) > budget:
        heap -= 1
    return max(heap, 0)
