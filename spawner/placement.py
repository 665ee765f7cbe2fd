"""Could any node ever take this pod? A pure check, so that a spawn nobody can place fails at once.

Without it, a notebook pod asking for a GPU (or a node label) that no node has stays Pending until the
hub's ``start_timeout`` runs out, and the student waits minutes for a vague timeout. :func:`unplaceable_reason`
compares the pod with every node, the way the scheduler's static filters do: node selector (and required
node affinity terms of ``In``/``Exists`` form), taints with ``NoSchedule``/``NoExecute`` against the pod's
tolerations, ``spec.unschedulable``, and each container's requests against the node's allocatable. It
does not count what other pods use now: a busy cluster is not a reason to fail (the pod waits in the
queue), a cluster where the pod can never fit is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from occam.errors import ConfigError
from occam.kubernetes.objects import parse_quantity

_HARD_EFFECTS = ("NoSchedule", "NoExecute")


def pod_requests(pod: Mapping[str, Any]) -> dict[str, float]:
    """The pod's requests summed over its containers (a limit stands in for a missing request, as in Kubernetes)."""
    total: dict[str, float] = {}
    for container in (pod.get("spec") or {}).get("containers") or []:
        resources = container.get("resources") or {}
        asked = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
        for name, value in asked.items():
            total[name] = total.get(name, 0.0) + _quantity(value)
    return total


def _quantity(value: Any) -> float:
    try:
        return float(parse_quantity(str(value)))
    except ConfigError:
        return 0.0


def tolerates(taint: Mapping[str, Any], tolerations: Sequence[Mapping[str, Any]]) -> bool:
    """Whether one of ``tolerations`` tolerates ``taint`` (key, operator Exists/Equal, value, effect)."""
    for toleration in tolerations:
        effect = toleration.get("effect")
        if effect and effect != taint.get("effect"):
            continue
        operator = toleration.get("operator") or "Equal"
        key = toleration.get("key")
        if not key:
            if operator == "Exists":
                return True
            continue
        if key != taint.get("key"):
            continue
        if operator == "Exists" or (toleration.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def _required_terms(pod: Mapping[str, Any]) -> list[list[Mapping[str, Any]]]:
    affinity = ((pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {}
    required = affinity.get("requiredDuringSchedulingIgnoredDuringExecution") or {}
    return [term.get("matchExpressions") or [] for term in required.get("nodeSelectorTerms") or []]


def _expression_ok(expression: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    key, operator, values = str(expression.get("key")), expression.get("operator"), expression.get("values") or []
    if operator == "In":
        return key in labels and labels[key] in values
    if operator == "NotIn":
        return key not in labels or labels[key] not in values
    if operator == "Exists":
        return key in labels
    if operator == "DoesNotExist":
        return key not in labels
    return True  # Gt/Lt: left to the scheduler


def node_misfit(pod: Mapping[str, Any], node: Mapping[str, Any]) -> str | None:
    """Why ``node`` can never take ``pod`` (both v1 objects as dicts), or None if it could."""
    spec = pod.get("spec") or {}
    metadata = node.get("metadata") or {}
    labels = metadata.get("labels") or {}
    if (node.get("spec") or {}).get("unschedulable"):
        return "is cordoned (unschedulable)"
    wrong = {k: v for k, v in (spec.get("nodeSelector") or {}).items() if labels.get(k) != v}
    if wrong:
        return "lacks the label(s) " + ", ".join(f"{k}={v}" for k, v in sorted(wrong.items()))
    terms = _required_terms(pod)
    if terms and not any(all(_expression_ok(e, labels) for e in term) for term in terms):
        return "matches none of the pod's required node affinity terms"
    tolerations = spec.get("tolerations") or []
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint.get("effect") in _HARD_EFFECTS and not tolerates(taint, tolerations):
            value = f"={taint['value']}" if taint.get("value") else ""
            return f"has the taint {taint.get('key')}{value}:{taint.get('effect')} the pod does not tolerate"
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    for name, amount in sorted(pod_requests(pod).items()):
        if amount <= 0:
            continue
        have = _quantity(allocatable.get(name, "0"))
        if have < amount:
            return f"has {allocatable.get(name, '0')} {name} allocatable, the pod asks for {_format(amount, name)}"
    return None


def _format(amount: float, name: str = "") -> str:
    if "memory" in name and amount >= 2**20:
        return f"{amount / 2**30:.3g}Gi"
    return str(int(amount)) if amount == int(amount) else f"{amount:g}"


def unplaceable_reason(pod: Mapping[str, Any], nodes: Sequence[Mapping[str, Any]]) -> str | None:
    """None if some node could take ``pod``; else a message for the student and admin saying why none can.

    The message names what the pod asks for and, per reason, the nodes that fail it, so an admin can tell
    a missing GPU node from a wrong profile label or a missing toleration.
    """
    reasons: dict[str, list[str]] = {}
    for node in nodes:
        reason = node_misfit(pod, node)
        if reason is None:
            return None
        reasons.setdefault(reason, []).append(str((node.get("metadata") or {}).get("name")))
    spec = pod.get("spec") or {}
    asked = ", ".join(f"{_format(v, k)} {k}" for k, v in sorted(pod_requests(pod).items()) if v > 0) or "nothing"
    selector = spec.get("nodeSelector") or {}
    wants = f"asks for {asked}"
    if selector:
        wants += " on nodes labelled " + ", ".join(f"{k}={v}" for k, v in sorted(selector.items()))
    if not nodes:
        return f"no node in the cluster could run this server: the cluster has no nodes (the pod {wants})"
    why = "; ".join(f"{', '.join(sorted(names))}: {reason}" for reason, names in sorted(reasons.items()))
    return (
        f"no node in the cluster could ever run this server (the pod {wants}). {why}. "
        "Choose another profile, or ask an administrator to add such a node or fix the profile"
    )


__all__ = ["node_misfit", "pod_requests", "tolerates", "unplaceable_reason"]
