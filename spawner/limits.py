"""What a course allows each student: how many executors, and how much CPU, memory and GPU in all."""

from __future__ import annotations

from dataclasses import dataclass

from occam.errors import ConfigError
from occam.kubernetes.objects import parse_quantity


@dataclass(frozen=True)
class CourseLimits:
    """The resources of one student's namespace, enforced by its ResourceQuota and LimitRange.

    ``max_executors``: executor pods a student may run at once (the quota allows one more pod, the
    notebook). ``cpu`` and ``memory``: the namespace's total, notebook included, as Kubernetes
    quantities (``"8"``, ``"16Gi"``); the quota caps both requests and limits at these. ``gpus``: GPUs
    in all (``0``: none). ``executor_max_cpu`` and ``executor_max_memory``: the most one container may
    ask for (the LimitRange applies to every container in the namespace, the notebook's too).
    """

    max_executors: int
    cpu: str
    memory: str
    gpus: int = 0
    executor_max_cpu: str = "2"
    executor_max_memory: str = "4Gi"

    def __post_init__(self) -> None:
        for name in ("max_executors", "gpus"):
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
        amounts = {}
        for name, example in (
            ("cpu", "'8' or '7500m'"),
            ("memory", "'16Gi'"),
            ("executor_max_cpu", "'2'"),
            ("executor_max_memory", "'4Gi'"),
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
            if amount <= 0:
                raise ConfigError(f"CourseLimits {name}={value!r} must be more than zero, e.g. {example}")
            amounts[name] = amount
        for part, whole in (("executor_max_cpu", "cpu"), ("executor_max_memory", "memory")):
            if amounts[part] > amounts[whole]:
                raise ConfigError(
                    f"CourseLimits {part}={getattr(self, part)!r} is more than the namespace's whole "
                    f"{whole}={getattr(self, whole)!r}: no executor that large could ever start; lower "
                    f"{part} or raise {whole}"
                )
