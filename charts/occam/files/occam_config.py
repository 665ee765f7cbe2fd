"""Occam's part of the hub's configuration, shipped in the occam chart.

Zero to JupyterHub's ``jupyterhub_config.py`` runs every ``*.py`` file in
``/usr/local/etc/jupyterhub/jupyterhub_config.d`` after its own settings, with its config object ``c`` in
scope. The chart mounts its ConfigMap ``occam-hub-config`` there: this file and ``occam-values.json``,
the chart's ``occam`` values plus what the templates know (release namespace, hub pod labels).

:func:`hub_config` turns those values into traitlets settings (pure: dict in, dict out), and the
block at the end applies them to ``c``: OccamSpawner as the spawner class, the course limits, the
profiles (KubeSpawner profiles made by :mod:`spawner.profiles`, whose ``kubespawner_override`` sets the
image, the notebook's resources and GPUs, the namespace's GPU quota and where GPU pods go), the
shared data volume, and the shared work volume (OccamSpawner mounts that one itself, in executors too).
"""

from __future__ import annotations

import json
import os
from typing import Any

#: Where the chart mounts the values; OCCAM_HUB_VALUES points elsewhere (tests).
VALUES_FILE = os.environ.get("OCCAM_HUB_VALUES", "/usr/local/etc/jupyterhub/jupyterhub_config.d/occam-values.json")
SHARED_DATA_VOLUME = "occam-shared-data"

_COURSE_KEYS = {
    "maxExecutors": "max_executors",
    "cpu": "cpu",
    "memory": "memory",
    "executorMaxCpu": "executor_max_cpu",
    "executorMaxMemory": "executor_max_memory",
    "ephemeralStorage": "ephemeral_storage",
    "executorMaxEphemeralStorage": "executor_max_ephemeral_storage",
    "storage": "storage",
    "secrets": "secrets",
    "configmaps": "configmaps",
    "services": "services",
    "persistentVolumeClaims": "persistent_volume_claims",
}


def _image(image: dict[str, str]) -> str:
    return f"{image['name']}:{image['tag']}"


def _bytes_spec(memory: str) -> str:
    """A binary Kubernetes quantity ("2Gi") as KubeSpawner's byte specification ("2G": K, M, G, T are binary)."""
    return memory[:-1] if memory.endswith("i") else memory


def course_limits(course: dict[str, Any], gpus: int) -> dict[str, Any]:
    """OccamSpawner.course_limits from the chart's ``occam.course`` and a profile's GPU quota."""
    limits = {snake: course[camel] for camel, snake in _COURSE_KEYS.items() if camel in course}
    limits["gpus"] = gpus
    return limits


def profile(values: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    """One KubeSpawner profile from an ``occam.profiles`` entry (spawner.profiles builds it)."""
    from spawner.profiles import cpu_profile, gpu_profile

    notebook = entry["notebook"]
    common: dict[str, Any] = {
        "cpu": float(notebook["cpu"]),
        "memory": _bytes_spec(notebook["memory"]),
        "description": entry.get("description", ""),
        "default": bool(entry.get("default", False)),
        "slug": entry["slug"],
    }
    gpus = int(entry.get("gpus", 0))
    limits = course_limits(values["course"], int(entry.get("gpuQuota", gpus)))
    if gpus:
        built = gpu_profile(
            entry["displayName"],
            gpus=gpus,
            node_selector=entry.get("nodeSelector"),
            tolerations=entry.get("tolerations"),
            course_limits=limits,
            **common,
        )
    else:
        built = cpu_profile(entry["displayName"], course_limits=limits, **common)
    override = built["kubespawner_override"]
    override["image"] = _image(values["images"][entry.get("image", "notebook")])
    if entry.get("executorImage"):
        override["executor_image"] = entry["executorImage"]
    return built


def shared_data(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The read-only volume and its mount for ``occam.sharedData``, or None when it is off."""
    shared = values.get("sharedData") or {}
    if not shared.get("enabled"):
        return None
    ((kind, source),) = shared["volume"].items()
    source = {**source, "readOnly": True}
    volume = {"name": SHARED_DATA_VOLUME, kind: source}
    mount = {"name": SHARED_DATA_VOLUME, "mountPath": shared["mountPath"], "readOnly": True}
    return volume, mount


def shared_work(values: dict[str, Any]) -> dict[str, Any]:
    """OccamSpawner's shared_work_volume (or work_storage_class and work_storage_size: each student's own claim)
    and shared_work_path for ``occam.sharedWork`` (empty when it is off)."""
    work = values.get("sharedWork") or {}
    if not work.get("enabled"):
        return {}
    settings: dict[str, Any] = {"shared_work_path": work["mountPath"]}
    if work.get("volume"):
        settings["shared_work_volume"] = dict(work["volume"])
    if work.get("storageClass"):
        settings["work_storage_class"] = work["storageClass"]
        settings["work_storage_size"] = work.get("size") or "10Gi"
    return settings


def network(values: dict[str, Any]) -> dict[str, Any]:
    """OccamSpawner's api_server_cidrs, dns_cidrs and allow_internet from ``occam.network``."""
    net = values.get("network") or {}
    return {
        "api_server_cidrs": list(net.get("apiServerCIDRs") or []),
        "dns_cidrs": list(net.get("dnsCIDRs") or []),
        "allow_internet": bool(net.get("internet", False)),
    }


def hub_config(values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Traitlets settings by section (``{"OccamSpawner": {...}, ...}``) from the chart's values file."""
    first = values["profiles"][0]
    spawner: dict[str, Any] = {
        # Used when no profile is picked (the hub API, tests); a profile overrides it.
        "course_limits": course_limits(values["course"], int(first.get("gpuQuota", first.get("gpus", 0)))),
        "namespace_prefix": values["spawner"]["namespacePrefix"],
        "namespace_prepare_timeout": float(values["spawner"]["namespacePrepareTimeout"]),
        "check_node_fit": bool(values["spawner"].get("checkNodeFit", True)),
        "pod_security_level": values["spawner"].get("podSecurityLevel", "restricted"),
        "hub_namespace": values["hubNamespace"],
        "hub_selector": dict(values["hubSelector"]),
        "notebook_cluster_role": values["notebookClusterRole"],
        "hub_namespace_role": values["hubNamespaceRole"],
        **network(values),
        **shared_work(values),
    }
    return {
        "JupyterHub": {"spawner_class": "occam"},
        "OccamSpawner": spawner,
        "KubeSpawner": {"profile_list": [profile(values, entry) for entry in values["profiles"]]},
    }


def apply(config: Any, values: dict[str, Any]) -> None:
    """Set :func:`hub_config`'s settings on ``config`` and add the shared volume to what Z2JH mounted."""
    for section, settings in hub_config(values).items():
        for name, value in settings.items():
            setattr(config[section], name, value)
    mounted = shared_data(values)
    if mounted is not None:
        volume, mount = mounted
        volumes = config.KubeSpawner.get("volumes")
        mounts = config.KubeSpawner.get("volume_mounts")
        # Z2JH sets both as dicts (name -> volume); keep whatever else it mounted.
        config.KubeSpawner.volumes = {**(volumes if isinstance(volumes, dict) else {}), SHARED_DATA_VOLUME: volume}
        config.KubeSpawner.volume_mounts = {**(mounts if isinstance(mounts, dict) else {}), SHARED_DATA_VOLUME: mount}


def load(path: str = VALUES_FILE) -> dict[str, Any]:
    with open(path) as f:
        values: dict[str, Any] = json.load(f)
    return values


# Run by Z2JH's jupyterhub_config.py (exec, with its ``c`` in scope); importing this file does nothing.
if "c" in globals() and type(globals()["c"]).__name__ == "Config":
    apply(globals()["c"], load())
