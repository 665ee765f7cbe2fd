"""CPU and GPU profiles for KubeSpawner's ``profile_list``, with the settings Occam's executors need too.

A profile is a plain dict (KubeSpawner's format): ``display_name``, ``slug``, ``description`` and a
``kubespawner_override`` of spawner settings applied when a student picks it. :func:`gpu_profile` sets,
for the notebook pod, the GPU limit, node selector and tolerations; and, for the executors that
``start_cluster(gpu=True)`` makes from that notebook, ``gpu_node_selector`` and ``gpu_tolerations``
(read by the Kubernetes backend from the notebook's environment) and a ``course_limits`` whose GPU
quota lets them run. In ``jupyterhub_config.py``::

    from spawner.profiles import cpu_profile, gpu_profile

    c.OccamSpawner.profile_list = [
        cpu_profile("CPU", cpu=2, memory="4G", default=True),
        gpu_profile(
            "1 GPU (T4)", cpu=4, memory="16G", gpus=1,
            node_selector={"nvidia.com/gpu.product": "Tesla-T4"},
            course_limits={"max_executors": 2, "cpu": "16", "memory": "64Gi", "gpus": 3},
        ),
    ]

If no node has the labels, the GPUs or the tolerated taints a profile asks for, the spawn fails at once
saying so (``OccamSpawner.check_node_fit``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from occam.contract import GPU_RESOURCE
from occam.errors import ConfigError

#: The taint GPU nodes usually carry (NVIDIA's GPU operator, managed Kubernetes GPU pools).
DEFAULT_GPU_TOLERATIONS: list[dict[str, str]] = [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}]


def _slug(display_name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", display_name.lower()).strip("-")
    if not slug:
        raise ConfigError(f"profile display_name {display_name!r} needs at least one letter or digit")
    return slug


def _base(
    display_name: str, *, cpu: float, memory: str, description: str, default: bool, slug: str | None
) -> dict[str, Any]:
    if not isinstance(cpu, int | float) or isinstance(cpu, bool) or cpu <= 0:
        raise ConfigError(f"profile {display_name!r}: cpu={cpu!r} must be a number of cores above 0, e.g. cpu=2")
    if not isinstance(memory, str) or not memory.strip():
        raise ConfigError(f"profile {display_name!r}: memory={memory!r} must be a size such as '4G'")
    profile: dict[str, Any] = {
        "display_name": display_name,
        "slug": slug or _slug(display_name),
        "description": description,
        "kubespawner_override": {
            "cpu_guarantee": float(cpu),
            "cpu_limit": float(cpu),
            "mem_guarantee": memory,
            "mem_limit": memory,
        },
    }
    if default:
        profile["default"] = True
    return profile


def cpu_profile(
    display_name: str,
    *,
    cpu: float,
    memory: str,
    description: str = "",
    default: bool = False,
    slug: str | None = None,
    course_limits: Mapping[str, Any] | None = None,
    gpu_node_selector: Mapping[str, str] | None = None,
    gpu_tolerations: Sequence[Mapping[str, Any]] | None = None,
    gpu_executor_image: str | None = None,
) -> dict[str, Any]:
    """A profile whose notebook gets ``cpu`` cores and ``memory`` (request = limit), and no GPU.

    With ``course_limits`` allowing GPUs, the notebook borrows them: it holds none, and the executors of
    ``start_cluster(gpu=True)`` draw from the namespace's GPU quota, placed by ``gpu_node_selector`` and
    ``gpu_tolerations`` (default: tolerate the ``nvidia.com/gpu`` taint) and running ``gpu_executor_image``
    (a CUDA image; the notebook's CPU image would not use the GPU).
    """
    profile = _base(
        display_name,
        cpu=cpu,
        memory=memory,
        description=description or f"{cpu:g} CPU, {memory} memory",
        default=default,
        slug=slug,
    )
    override = profile["kubespawner_override"]
    if course_limits is not None:
        override["course_limits"] = dict(course_limits)
    if course_limits is not None and course_limits.get("gpus", 0):
        tolerated = DEFAULT_GPU_TOLERATIONS if gpu_tolerations is None else gpu_tolerations
        override["gpu_tolerations"] = [dict(t) for t in tolerated]
        if gpu_node_selector:
            override["gpu_node_selector"] = {str(k): str(v) for k, v in gpu_node_selector.items()}
        if gpu_executor_image:
            override["gpu_executor_image"] = gpu_executor_image
    elif gpu_node_selector or gpu_tolerations or gpu_executor_image:
        raise ConfigError(
            f"cpu_profile {display_name!r}: GPU placement is set but course_limits allow no GPUs; set "
            "course_limits['gpus'] to the GPUs its executors may borrow, or drop the GPU settings"
        )
    return profile


def gpu_profile(
    display_name: str,
    *,
    cpu: float,
    memory: str,
    gpus: int = 1,
    node_selector: Mapping[str, str] | None = None,
    tolerations: Sequence[Mapping[str, Any]] | None = None,
    course_limits: Mapping[str, Any],
    description: str = "",
    default: bool = False,
    slug: str | None = None,
) -> dict[str, Any]:
    """A profile whose notebook gets ``gpus`` GPUs, and whose executors may get GPUs on the same kind of node.

    ``node_selector`` and ``tolerations`` (default: tolerate the ``nvidia.com/gpu`` taint) apply to the
    notebook pod and, through ``gpu_node_selector``/``gpu_tolerations``, to GPU executors. ``course_limits``
    (as ``OccamSpawner.course_limits``) must allow at least ``gpus`` GPUs: the notebook's GPUs count against
    the namespace's quota like the executors'.
    """
    if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 1:
        raise ConfigError(f"gpu_profile {display_name!r}: gpus={gpus!r} must be a whole number of at least 1")
    quota_gpus = course_limits.get("gpus", 0)
    if not isinstance(quota_gpus, int) or quota_gpus < gpus:
        raise ConfigError(
            f"gpu_profile {display_name!r}: course_limits gpus={quota_gpus!r} is less than the notebook's gpus={gpus}; "
            "the namespace's quota would refuse the notebook pod. Raise course_limits['gpus'] (the notebook's "
            "GPUs plus those of the executors)"
        )
    selector = {str(k): str(v) for k, v in (node_selector or {}).items()}
    tolerated = [dict(t) for t in (DEFAULT_GPU_TOLERATIONS if tolerations is None else tolerations)]
    profile = _base(
        display_name,
        cpu=cpu,
        memory=memory,
        description=description or f"{gpus} GPU, {cpu:g} CPU, {memory} memory",
        default=default,
        slug=slug,
    )
    override = profile["kubespawner_override"]
    override["extra_resource_guarantees"] = {GPU_RESOURCE: str(gpus)}
    override["extra_resource_limits"] = {GPU_RESOURCE: str(gpus)}
    override["tolerations"] = tolerated
    override["gpu_tolerations"] = [dict(t) for t in tolerated]
    if selector:
        override["node_selector"] = dict(selector)
        override["gpu_node_selector"] = dict(selector)
    override["course_limits"] = dict(course_limits)
    return profile


__all__ = ["DEFAULT_GPU_TOLERATIONS", "GPU_RESOURCE", "cpu_profile", "gpu_profile"]
