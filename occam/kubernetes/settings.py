"""What the Kubernetes backend needs to know about the notebook pod it runs in, read from ``OCCAM_K8S_*``.

The notebook spawner sets these variables on every notebook pod (the pod facts through the downward
API). Outside such a pod, pass the values to :func:`settings_from_env` as keyword arguments.
"""

from __future__ import annotations

import functools
import json
import posixpath
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from occam import config
from occam.contract import (
    BLOCK_MANAGER_PORT,
    CATALOG_PATH_ENV,
    CATALOG_VOLUME_ENV,
    DRIVER_PORT,
    GPU_RESOURCE,
    IMAGE_PULL_POLICY_ENV,
    NAMESPACE_ENV,
    POD_NAME_ENV,
    UI_PORT,
)
from occam.errors import ConfigError
from occam.kubernetes.shared import EXAMPLE as SHARED_VOLUME_EXAMPLE
from occam.kubernetes.shared import check_shared_data, check_shared_work

#: Setting name -> the variable it is read from (occam.config's ``kubernetes.<name>``). Settings missing here
#: are set by argument only.
ENV_VARS: dict[str, str] = {
    key.partition(".")[2]: config.env_key(key) for key in config.DEFAULTS if key.startswith("kubernetes.")
}

#: How the spawner fills each required variable, for the message when one is missing.
_REQUIRED_SOURCES = {
    "namespace": "the pod's namespace, from the downward API metadata.namespace",
    "pod_name": "the notebook pod's name, from the downward API metadata.name",
    "pod_ip": "the notebook pod's IP, from the downward API status.podIP",
    "executor_image": "the container image executors run, with the same Python, Spark and Occam as the notebook",
}

PULL_POLICIES = ("Always", "IfNotPresent", "Never")


#: A toleration of the GPU nodes' usual taint, as messages show it.
TOLERATION_EXAMPLE = json.dumps([{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}])


@dataclass(frozen=True)
class KubernetesSettings:
    """Facts about the notebook pod (the Spark driver) and how executor pods are made.

    ``namespace``, ``pod_name``, ``pod_ip``: where the driver runs; executors connect back to ``pod_ip``.
    ``pod_uid``: the notebook pod's UID; when known, the objects Occam creates are owned by the notebook
    pod, so Kubernetes deletes them with it. ``executor_image`` and ``image_pull_policy``: the executors'
    container; ``gpu_executor_image``: the image of GPU executors, when not ``executor_image`` (a CPU notebook
    whose course lends it GPUs runs the CPU image; its GPU executors need the GPU one). ``service_account``: the account executor pods run as (None: the namespace's default;
    its token is never mounted). ``api_server``: the Kubernetes API as seen from the pod. ``user``: the
    student, for the ``occam.io/user`` label only. ``driver_port``, ``block_manager_port``,
    ``ui_port``: fixed ports on the notebook pod, so network policies can allow them. ``gpu_resource``:
    the extended resource a GPU executor asks for, ``<vendor>/gpu``. ``gpu_node_selector`` and
    ``gpu_tolerations``: added to GPU executor pods only, to land them on GPU nodes.
    ``shared_volume`` and ``shared_path``: the shared work volume (a Kubernetes volume source) and
    where the notebook mounts it; executor pods mount it read-write at the same path, so datasets and
    checkpoints written there are seen by all (see :mod:`occam.kubernetes.shared`). None: no such volume.
    ``data_volume`` and ``data_path``: the course's read-only data volume (the chart's ``occam.sharedData``)
    and where the notebook mounts it; executor pods mount it read-only at the same path. None: none.
    ``catalog_volume`` and ``catalog_path``: the course catalog of shared models (the chart's ``occam.catalog``),
    mounted read-only the same way, so that ``occam.models.load`` of a shared model works in a model_fn.
    """

    namespace: str
    pod_name: str
    pod_ip: str
    executor_image: str
    pod_uid: str | None = None
    image_pull_policy: str = config.DEFAULTS["kubernetes.image_pull_policy"]
    gpu_executor_image: str | None = None
    service_account: str | None = None
    api_server: str = config.DEFAULTS["kubernetes.api_server"]
    user: str | None = None
    driver_port: int = DRIVER_PORT
    block_manager_port: int = BLOCK_MANAGER_PORT
    ui_port: int = UI_PORT
    gpu_resource: str = GPU_RESOURCE
    gpu_node_selector: dict[str, str] = field(default_factory=dict)
    gpu_tolerations: list[dict[str, Any]] = field(default_factory=list)
    shared_volume: dict[str, Any] | None = None
    shared_path: str | None = None
    data_volume: dict[str, Any] | None = None
    data_path: str | None = None
    catalog_volume: dict[str, Any] | None = None
    catalog_path: str | None = None

    def __post_init__(self) -> None:
        for name in ("namespace", "pod_name", "pod_ip", "executor_image", "api_server"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"Kubernetes setting {name}={value!r} must be a non-empty string")
        if self.image_pull_policy not in PULL_POLICIES:
            raise ConfigError(
                f"image_pull_policy={self.image_pull_policy!r} is not a Kubernetes pull policy; "
                f"use one of {', '.join(PULL_POLICIES)} (env {IMAGE_PULL_POLICY_ENV})"
            )
        ports = {
            "driver_port": self.driver_port,
            "block_manager_port": self.block_manager_port,
            "ui_port": self.ui_port,
        }
        for name, port in ports.items():
            if isinstance(port, bool) or not isinstance(port, int) or not 1024 <= port <= 65535:
                raise ConfigError(f"{name}={port!r} must be a port number from 1024 to 65535")
        if len(set(ports.values())) != len(ports):
            raise ConfigError(f"the driver's ports must all differ, got {ports}")
        if not isinstance(self.gpu_node_selector, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.gpu_node_selector.items()
        ):
            raise ConfigError(
                f'gpu_node_selector={self.gpu_node_selector!r} must map label names to values, e.g. {{"gpu": "true"}}'
            )
        if not isinstance(self.gpu_tolerations, list) or not all(isinstance(t, dict) for t in self.gpu_tolerations):
            raise ConfigError(
                f"gpu_tolerations={self.gpu_tolerations!r} must be a list of toleration objects, e.g. "
                f"{TOLERATION_EXAMPLE}"
            )
        check_shared_work(self.shared_volume, self.shared_path)
        if self.shared_path is not None:
            object.__setattr__(self, "shared_path", posixpath.normpath(self.shared_path))
        check_shared_data(self.data_volume, self.data_path, self.shared_path)
        if self.data_path is not None:
            object.__setattr__(self, "data_path", posixpath.normpath(self.data_path))
        check_shared_data(
            self.catalog_volume,
            self.catalog_path,
            self.shared_path,
            what="course catalog volume",
            volume_env=CATALOG_VOLUME_ENV,
            path_env=CATALOG_PATH_ENV,
        )
        if self.catalog_path is not None:
            object.__setattr__(self, "catalog_path", posixpath.normpath(self.catalog_path))


def in_kubernetes_pod(environ: Mapping[str, str]) -> bool:
    """Whether this process runs in a notebook pod set up by the spawner (for the backend's ``detect``)."""
    return bool(environ.get(NAMESPACE_ENV)) and bool(environ.get(POD_NAME_ENV))


def settings_from_env(environ: Mapping[str, str], **overrides: Any) -> KubernetesSettings:
    """Build :class:`KubernetesSettings` from ``OCCAM_K8S_*`` variables; keyword arguments win over them.

    An override of ``None`` counts as not given; an empty variable counts as unset. A missing required
    value raises :class:`~occam.errors.ConfigError` naming the variable and the argument to pass instead.
    """
    known = {f.name for f in fields(KubernetesSettings)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(f"unknown Kubernetes setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    parsers: dict[str, Callable[[str, str], Any]] = {
        "gpu_node_selector": _parse_node_selector,
        "gpu_tolerations": _parse_tolerations,
        "shared_volume": _parse_shared_volume,
        "data_volume": _parse_shared_volume,
        "catalog_volume": _parse_shared_volume,
    }
    values: dict[str, Any] = {}
    for name in known:
        if overrides.get(name) is not None:
            values[name] = overrides[name]
            continue
        if name not in ENV_VARS:
            continue
        variable = ENV_VARS[name]
        parse = parsers.get(name)
        value = config.get(
            f"kubernetes.{name}", environ=environ, parse=functools.partial(parse, variable) if parse else None
        )
        if value is not None:
            values[name] = value
        elif name in _REQUIRED_SOURCES:
            raise ConfigError(
                f"{variable} is not set: the notebook spawner sets it to {_REQUIRED_SOURCES[name]}; "
                f"outside a spawned notebook pod, pass {name}=... explicitly"
            )
    return KubernetesSettings(**values)


def _parse_node_selector(variable: str, raw: str) -> dict[str, str]:
    value = _parse_json(variable, raw, '{"nvidia.com/gpu.present": "true"}')
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ConfigError(
            f'{variable}={raw!r} must be a JSON object of label values, e.g. {{"nvidia.com/gpu.present": "true"}}'
        )
    return value


def _parse_tolerations(variable: str, raw: str) -> list[dict[str, Any]]:
    example = TOLERATION_EXAMPLE
    value = _parse_json(variable, raw, example)
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise ConfigError(f"{variable}={raw!r} must be a JSON list of toleration objects, e.g. {example}")
    return value


def _parse_shared_volume(variable: str, raw: str) -> Any:
    return _parse_json(variable, raw, SHARED_VOLUME_EXAMPLE)


def _parse_json(variable: str, raw: str, example: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError as error:
        raise ConfigError(f"{variable} is not valid JSON ({error.msg}); write it like {example}") from None
