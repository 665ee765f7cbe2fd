"""What a course allows each student: how many executors, how much CPU, memory, GPU and storage in all, and how
many of the namespaced objects a student can make (Secrets, ConfigMaps, Services, claims)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from occam.errors import ConfigError
from occam.kubernetes.objects import parse_quantity

#: The object counts of :class:`CourseLimits` (whole numbers, 0 or more).
COUNT_FIELDS = ("secrets", "configmaps", "services", "persistent_volume_claims")


@dataclass(frozen=True)
class CourseLimits:
    """The resources of one student's namespace, enforced by its ResourceQuota and LimitRange.

    ``max_executors``: executor pods a student may run at once (the quota allows one more pod, the
    notebook). ``cpu`` and ``memory``: the namespace's total, notebook included, as Kubernetes
    quantities (``"8"``, ``"16Gi"``); the quota caps both requests and limits at these. ``gpus``: GPUs
    in all (``0``: none). ``executor_max_cpu`` and ``executor_max_memory``: the most one container may
    ask for (the LimitRange applies to every container in the namespace, the notebook's too).

    Storage: ``ephemeral_storage`` is the namespace's node-local disk in all (container writable layers,
    logs and ``emptyDir`` volumes such as Spark's local dirs), capped as requests and as limits;
    ``executor_max_ephemeral_storage`` the most one container may use. ``storage``: what the
    namespace's PersistentVolumeClaims may request in all, KubeSpawner's home volume claim included.

    Object counts, so that a student cannot fill etcd: ``secrets`` (Occam makes one per cluster),
    ``configmaps`` (Kubernetes puts ``kube-root-ca.crt`` in every namespace, Spark one per
    application), ``services`` (a batch job's driver has one; NodePort and LoadBalancer Services are
    never allowed), ``persistent_volume_claims``.
    """

    max_executors: int
    cpu: str
    memory: str
    gpus: int = 0
    executor_max_cpu: str = "2"
    executor_max_memory: str = "4Gi"
    ephemeral_storage: str = "20Gi"
    executor_max_ephemeral_storage: str = "4Gi"
    storage: str = "20Gi"
    secrets: int = 20
    configmaps: int = 20
    services: int = 10
    persistent_volume_claims: int = 4

    def __post_init__(self) -> None:
        for name in ("max_executors", "gpus", *COUNT_FIELDS):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"CourseLimits {name}={value!r} must be a whole number, e.g. {name}=4")
        if self.max_executors < 1:
            raise ConfigError(
                f"CourseLimits max_executors={self.max_executors} must be at least 1: a student needs one "
                "executor to start a cluster"
            )
        if self.gpus < 0:
            raise ConfigError(f"CourseLimits gpus={self.gpus} must be 0 (no GPUs) or more")
        for name in COUNT_FIELDS:
            if getattr(self, name) < 0:
                raise ConfigError(f"CourseLimits {name}={getattr(self, name)} must be 0 (none allowed) or more")
        if self.configmaps < 1:
            raise ConfigError(
                "CourseLimits configmaps=0 leaves no room for kube-root-ca.crt, which Kubernetes puts in every "
                "namespace (and Spark needs one per application): allow at least 1, e.g. configmaps=20"
            )
        amounts = {}
        for name, example in (
            ("cpu", "'8' or '7500m'"),
            ("memory", "'16Gi'"),
            ("executor_max_cpu", "'2'"),
            ("executor_max_memory", "'4Gi'"),
            ("ephemeral_storage", "'20Gi'"),
            ("executor_max_ephemeral_storage", "'4Gi'"),
            ("storage", "'10Gi' (or '0' for no claims)"),
        ):
            value = getattr(self, name)
            if not isinstance(value, str):
                raise ConfigError(f"CourseLimits {name}={value!r} must be a Kubernetes quantity string like {example}")
            try:
                amount = parse_quantity(value)
            except ConfigError:
                raise ConfigError(
                    f"CourseLimits {name}={value!r} is not a Kubernetes quantity; write it like {example}"
                ) from None
            if amount <= 0 and name != "storage":
                raise ConfigError(f"CourseLimits {name}={value!r} must be more than zero, e.g. {example}")
            amounts[name] = amount
        for part, whole in (
            ("executor_max_cpu", "cpu"),
            ("executor_max_memory", "memory"),
            ("executor_max_ephemeral_storage", "ephemeral_storage"),
        ):
            if amounts[part] > amounts[whole]:
                raise ConfigError(
                    f"CourseLimits {part}={getattr(self, part)!r} is more than the namespace's whole "
                    f"{whole}={getattr(self, whole)!r}: no executor that large could ever start; lower "
                    f"{part} or raise {whole}"
                )


_LIMIT_FIELDS = tuple(field.name for field in dataclasses.fields(CourseLimits))


def course_limits_from(value: Any) -> CourseLimits:
    """:class:`CourseLimits` from the ``course_limits`` setting; a ConfigError says what is wrong."""
    if isinstance(value, CourseLimits):
        return value
    if not isinstance(value, dict):
        raise ConfigError(f"course_limits={value!r} must be a dict of {', '.join(_LIMIT_FIELDS)}")
    unknown = sorted(set(value) - set(_LIMIT_FIELDS))
    if unknown:
        raise ConfigError(f"course_limits has unknown key(s) {', '.join(unknown)}; known: {', '.join(_LIMIT_FIELDS)}")
    missing = [name for name in ("max_executors", "cpu", "memory") if name not in value]
    if missing:
        raise ConfigError(
            f"course_limits must set {', '.join(missing)}, e.g. "
            '{"max_executors": 4, "cpu": "8", "memory": "16Gi", "gpus": 0}'
        )
    return CourseLimits(**value)
