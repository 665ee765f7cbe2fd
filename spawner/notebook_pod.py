"""Pure builders of what the spawner adds to a student's notebook pod: plain dicts in, plain dicts out.

The notebook pod is the Spark driver. The Kubernetes backend (:mod:`occam.kubernetes.settings`) reads
``OCCAM_K8S_*`` variables there: the pod's own name, IP, UID and namespace through the downward API,
and the executor image, the user and the GPU placement as values (:func:`notebook_env`). The pod runs
as the namespace's notebook ServiceAccount with its token mounted (:func:`pod_spec_fields`), carries
:data:`~spawner.namespace.NOTEBOOK_LABELS`, which the namespace's NetworkPolicy selects, and meets Pod
Security's ``restricted`` level, which the namespace enforces (:func:`restricted_pod_security`,
:func:`restricted_container_security`).
``OccamSpawner.get_env`` and ``get_pod_manifest`` put all of that into KubeSpawner's pod.
"""

from __future__ import annotations

import copy
import json
import posixpath
from collections.abc import Mapping, Sequence
from typing import Any

from occam.contract import (
    CACHE_DIR_ENV,
    CHECKPOINT_DIR_ENV,
    EXECUTOR_IDLE_MINUTES_ENV,
    EXECUTOR_IMAGE_ENV,
    GPU_EXECUTOR_IMAGE_ENV,
    GPU_NODE_SELECTOR_ENV,
    GPU_TOLERATIONS_ENV,
    IMAGE_PULL_POLICY_ENV,
    MODELS_DIR_ENV,
    NAMESPACE_ENV,
    POD_IP_ENV,
    POD_NAME_ENV,
    POD_UID_ENV,
    SERVE_KEPT_IDLE_MINUTES_ENV,
    SERVICE_ACCOUNT_ENV,
    SHARED_PATH_ENV,
    SHARED_VOLUME_ENV,
    USER_ENV,
)
from occam.kubernetes.shared import check_shared_work, volume, volume_mount
from spawner.namespace import NOTEBOOK_LABELS, SERVICE_ACCOUNT

#: Variable -> the downward API field it is read from.
DOWNWARD_API_FIELDS: dict[str, str] = {
    NAMESPACE_ENV: "metadata.namespace",
    POD_NAME_ENV: "metadata.name",
    POD_UID_ENV: "metadata.uid",
    POD_IP_ENV: "status.podIP",
}


def _field_ref(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def notebook_env(
    *,
    executor_image: str,
    user: str,
    image_pull_policy: str | None = None,
    gpu_node_selector: Mapping[str, str] | None = None,
    gpu_tolerations: Sequence[Mapping[str, Any]] | None = None,
    gpu_executor_image: str | None = None,
    service_account: str | None = SERVICE_ACCOUNT,
    executor_idle_minutes: float = 0,
    kept_service_idle_minutes: float = 0,
) -> list[dict[str, Any]]:
    """The ``OCCAM_K8S_*`` variables of the notebook container, as Kubernetes EnvVar objects.

    The pod facts come from the downward API; the rest are plain values. The GPU node selector and
    tolerations are JSON, and are left out when empty (the backend then adds nothing to GPU executors).
    ``gpu_executor_image``: the image GPU executors run, when not ``executor_image`` (a CPU notebook
    borrowing GPUs). ``service_account``: the account executor pods run as, token not mounted: the
    notebook's, whose ``imagePullSecrets`` then reach them. ``executor_idle_minutes`` above 0: a cluster
    with no Spark job and no fit for that long releases its executors (``OCCAM_EXECUTOR_IDLE_MINUTES``).
    ``kept_service_idle_minutes`` above 0: a kept model service ends after that long with no request
    (``OCCAM_SERVE_KEPT_IDLE_MINUTES``).
    """
    if not executor_image or not executor_image.strip():
        raise ValueError("executor_image must name a container image (the notebook's own image, usually)")
    if isinstance(executor_idle_minutes, bool) or not executor_idle_minutes >= 0:
        raise ValueError(f"executor_idle_minutes={executor_idle_minutes!r} must be 0 (never) or more minutes")
    if isinstance(kept_service_idle_minutes, bool) or not kept_service_idle_minutes >= 0:
        raise ValueError(f"kept_service_idle_minutes={kept_service_idle_minutes!r} must be 0 (never) or more minutes")
    env = [_field_ref(name, path) for name, path in DOWNWARD_API_FIELDS.items()]
    env.append({"name": EXECUTOR_IMAGE_ENV, "value": executor_image})
    if gpu_executor_image and gpu_executor_image != executor_image:
        env.append({"name": GPU_EXECUTOR_IMAGE_ENV, "value": gpu_executor_image})
    if service_account:
        env.append({"name": SERVICE_ACCOUNT_ENV, "value": service_account})
    if executor_idle_minutes:
        env.append({"name": EXECUTOR_IDLE_MINUTES_ENV, "value": f"{executor_idle_minutes:g}"})
    if kept_service_idle_minutes:
        env.append({"name": SERVE_KEPT_IDLE_MINUTES_ENV, "value": f"{kept_service_idle_minutes:g}"})
    if image_pull_policy:
        env.append({"name": IMAGE_PULL_POLICY_ENV, "value": image_pull_policy})
    env.append({"name": USER_ENV, "value": user})
    if gpu_node_selector:
        env.append({"name": GPU_NODE_SELECTOR_ENV, "value": json.dumps(dict(gpu_node_selector), sort_keys=True)})
    if gpu_tolerations:
        env.append({"name": GPU_TOLERATIONS_ENV, "value": json.dumps([dict(t) for t in gpu_tolerations])})
    return env


#: Folders of the shared work volume that hold Occam's dataset cache and fit checkpoints.
SHARED_CACHE_FOLDER = "cache"
SHARED_CHECKPOINT_FOLDER = "checkpoints"
SHARED_MODELS_FOLDER = "models"


def shared_work_env(source: Mapping[str, Any], path: str) -> list[dict[str, Any]]:
    """The variables that tell Occam about the shared work volume ``source`` mounted at ``path``.

    ``OCCAM_K8S_SHARED_VOLUME``/``OCCAM_K8S_SHARED_PATH`` make the Kubernetes backend mount it in every
    executor; ``OCCAM_CACHE_DIR``, ``OCCAM_CHECKPOINT_DIR`` and ``OCCAM_MODELS_DIR`` put the dataset cache,
    checkpoints and the student's model store on it (``<path>/cache``, ``<path>/checkpoints``, ``<path>/models``),
    where executors and the notebook both see them (``occam.models.load`` in a model_fn). A
    ``cache_dir=``/``checkpoint_dir=`` argument still wins over these.
    """
    source = {kind: dict(fields) for kind, fields in source.items()}
    check_shared_work(source, path)
    path = posixpath.normpath(path)
    return [
        {"name": SHARED_VOLUME_ENV, "value": json.dumps(source, sort_keys=True)},
        {"name": SHARED_PATH_ENV, "value": path},
        {"name": CACHE_DIR_ENV, "value": posixpath.join(path, SHARED_CACHE_FOLDER)},
        {"name": CHECKPOINT_DIR_ENV, "value": posixpath.join(path, SHARED_CHECKPOINT_FOLDER)},
        {"name": MODELS_DIR_ENV, "value": posixpath.join(path, SHARED_MODELS_FOLDER)},
    ]


def shared_work_mount(source: Mapping[str, Any], path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The notebook pod's ``volumes`` entry and its container's read-write ``volumeMounts`` entry."""
    source = {kind: dict(fields) for kind, fields in source.items()}
    check_shared_work(source, path)
    return volume(source), volume_mount(posixpath.normpath(path))


#: Spark's driver reads this (as YARN's proxy sets it) to prefix every link and asset of its UI.
SPARK_UI_PROXY_BASE_ENV = "APPLICATION_WEB_PROXY_BASE"


def spark_ui_env(service_prefix: str, ui_port: int) -> dict[str, str]:
    """The variable that makes the Spark UI on ``ui_port`` work behind ``<service_prefix>proxy/<port>/``.

    jupyter-server-proxy forwards ``/user/<name>/proxy/<port>/jobs/`` to the UI as ``/jobs/``; the UI's
    pages must then link to ``/user/<name>/proxy/<port>/static/...``, not ``/static/...``. This is the
    path :attr:`occam.Cluster.dashboard_link` gives.
    """
    if not service_prefix.startswith("/"):
        raise ValueError(f"service prefix {service_prefix!r} must be a URL path such as '/user/ada/'")
    return {SPARK_UI_PROXY_BASE_ENV: f"{service_prefix.rstrip('/')}/proxy/{int(ui_port)}"}


def env_by_name(env: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """EnvVar objects as KubeSpawner's ``environment`` takes them: name -> value, or the EnvVar for ``valueFrom``."""
    return {item["name"]: item["value"] if "value" in item else copy.deepcopy(dict(item)) for item in env}


def notebook_labels() -> dict[str, str]:
    """The labels the notebook pod must carry (the NetworkPolicy selects it by them)."""
    return dict(NOTEBOOK_LABELS)


def pod_spec_fields() -> dict[str, Any]:
    """Pod spec fields of the notebook pod: it runs as the namespace's notebook account, token mounted."""
    return {"serviceAccountName": SERVICE_ACCOUNT, "automountServiceAccountToken": True}


def restricted_pod_security(context: Mapping[str, Any]) -> dict[str, Any]:
    """A pod ``securityContext`` (KubeSpawner's, from ``uid``, ``fs_gid``, ``pod_security_context``) made to meet
    ``restricted``: ``runAsNonRoot`` and, unless a ``Localhost`` profile is named, the ``RuntimeDefault``
    seccomp profile. A ``runAsUser: 0`` the admin set is kept, and Kubernetes refuses the pod, saying why."""
    result = copy.deepcopy(dict(context))
    result["runAsNonRoot"] = True
    if (result.get("seccompProfile") or {}).get("type") != "Localhost":
        result["seccompProfile"] = {"type": "RuntimeDefault"}
    return result


def restricted_container_security(context: Mapping[str, Any]) -> dict[str, Any]:
    """A container ``securityContext`` made to meet ``restricted``: no privilege escalation, not privileged, every
    capability dropped (``NET_BIND_SERVICE``, the one ``restricted`` allows adding, is kept if asked for),
    ``runAsNonRoot``."""
    result = copy.deepcopy(dict(context))
    result["allowPrivilegeEscalation"] = False
    result["privileged"] = False
    result["runAsNonRoot"] = True
    capabilities = dict(result.get("capabilities") or {})
    kept = [cap for cap in capabilities.get("add") or [] if cap == "NET_BIND_SERVICE"]
    capabilities = {"drop": ["ALL"], **({"add": kept} if kept else {})}
    result["capabilities"] = capabilities
    if (result.get("seccompProfile") or {}).get("type") not in (None, "RuntimeDefault", "Localhost"):
        result["seccompProfile"] = {"type": "RuntimeDefault"}
    return result


__all__ = [
    "DOWNWARD_API_FIELDS",
    "SPARK_UI_PROXY_BASE_ENV",
    "env_by_name",
    "notebook_env",
    "notebook_labels",
    "pod_spec_fields",
    "restricted_container_security",
    "restricted_pod_security",
    "shared_work_env",
    "shared_work_mount",
    "spark_ui_env",
]
