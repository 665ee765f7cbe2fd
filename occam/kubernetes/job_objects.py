"""Pure builders and readings of a Kubernetes batch job's objects: the driver pod template, the ConfigMap
holding the job's script, the Secret holding its RPC key, and what a driver pod's status says.

How the script reaches the driver: there is no shared filesystem, and Spark's own upload
(``spark.kubernetes.file.upload.path``) needs S3 or HDFS. So the script (or, for ``-m``, a launcher) goes
in a ConfigMap, which the driver pod template mounts read-only at :data:`JOB_DIR`; spark-submit names it
``local:///opt/occam/job/<file>``. Executors never need it: Spark ships them pickled functions. A
ConfigMap holds at most 1 MiB; modules the script imports must be in the image.

The ConfigMap and the Secret are created right after spark-submit creates the driver pod, with an owner
reference to it (the kubelet retries the volume mounts until they exist), so deleting the driver pod
deletes everything of the job: the executors (Spark makes them owned by the driver pod), Spark's own
Service and ConfigMap, and these two.
"""

from __future__ import annotations

import base64
import copy
from typing import Any

from occam.contract import BATCH_JOB_LABEL, CATALOG_VOLUME_NAME, DRIVER_COMPONENT
from occam.kubernetes import shared
from occam.kubernetes.objects import (
    auth_secret,
    cluster_labels,
    driver_secret_file_bytes,
    locked_down_pod_spec,
    resource_name,
)
from occam.kubernetes.settings import KubernetesSettings
from occam.spec import ClusterSpec

#: Where the driver pod mounts the job's ConfigMap (the script).
JOB_DIR = "/opt/occam/job"
#: Where the driver pod mounts the job's Secret; the driver reads its RPC key from ``AUTH_MOUNT/DRIVER_KEY``.
AUTH_MOUNT = "/opt/occam/spark-auth"
#: Key of the Secret holding the RPC key's raw bytes, for the driver's secret file (see
#: :func:`occam.kubernetes.objects.driver_secret_file_bytes`); executors use the base64 text beside it.
DRIVER_KEY = "driver-key"
#: Name of the driver container in the pod template (``spark.kubernetes.driver.podTemplateContainerName``).
DRIVER_CONTAINER_NAME = "driver"
JOB_VOLUME = "occam-job"

#: ConfigMaps hold at most 1 MiB in all.
MAX_SCRIPT_BYTES = 1000 * 1024


def driver_pod_name(spec: ClusterSpec) -> str:
    return f"{resource_name(spec)}-driver"


def job_configmap_name(spec: ClusterSpec) -> str:
    return f"{resource_name(spec)}-job"


def job_labels(spec: ClusterSpec, settings: KubernetesSettings, *, component: str) -> dict[str, str]:
    """The cluster's labels plus :data:`~occam.contract.BATCH_JOB_LABEL`: the notebook's stop leaves these alone."""
    return {**cluster_labels(spec, settings, component=component), BATCH_JOB_LABEL: "true"}


def driver_labels(spec: ClusterSpec, settings: KubernetesSettings) -> dict[str, str]:
    """The job's labels with component ``driver``: ``occam status`` and ``occam stop`` find the job by them."""
    return job_labels(spec, settings, component=DRIVER_COMPONENT)


def driver_pod_template(spec: ClusterSpec, settings: KubernetesSettings, *, service_account: str) -> dict[str, Any]:
    """A v1 Pod manifest for ``spark.kubernetes.driver.podTemplateFile``.

    Spark adds the command, environment, resources, its conf volume and the Secret mount. The template
    adds the job's labels, the service account (its token is mounted: the driver creates the executor
    pods with it), the job's ConfigMap at :data:`JOB_DIR`, and the same locked-down security context as
    executor pods, and the shared work volume when the settings have one (mounted where the executors
    mount it). The driver never gets a GPU.
    """
    template: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"labels": driver_labels(spec, settings)},
        "spec": {
            **locked_down_pod_spec(DRIVER_CONTAINER_NAME, settings, automount_token=True),
            "serviceAccountName": service_account,
            "volumes": [{"name": JOB_VOLUME, "configMap": {"name": job_configmap_name(spec)}}],
        },
    }
    template["spec"]["containers"][0]["volumeMounts"] = [{"name": JOB_VOLUME, "mountPath": JOB_DIR, "readOnly": True}]
    # The driver reads what its executors write (converted datasets, checkpoints) on the shared work volume.
    shared.mount_in(template["spec"], settings.shared_volume, settings.shared_path)
    # ... and the course's data where the notebook and the executors see it.
    shared.mount_data_in(template["spec"], settings.data_volume, settings.data_path)
    shared.mount_data_in(template["spec"], settings.catalog_volume, settings.catalog_path, name=CATALOG_VOLUME_NAME)
    return template


def owned_by(pod: dict[str, Any]) -> dict[str, Any]:
    """An owner reference to ``pod`` (an API dict with ``metadata.name`` and ``metadata.uid``)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "name": pod["metadata"]["name"],
        "uid": pod["metadata"]["uid"],
        "controller": True,
    }


def job_configmap(
    spec: ClusterSpec, settings: KubernetesSettings, *, file_name: str, source: str, driver_pod: dict[str, Any]
) -> dict[str, Any]:
    """The ConfigMap holding the job's file under ``file_name``, owned by the driver pod."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": job_configmap_name(spec),
            "namespace": settings.namespace,
            "labels": job_labels(spec, settings, component="job"),
            "ownerReferences": [owned_by(driver_pod)],
        },
        "immutable": True,
        "data": {file_name: source},
    }


def job_auth_secret(
    spec: ClusterSpec, settings: KubernetesSettings, secret_value: str, *, driver_pod: dict[str, Any]
) -> dict[str, Any]:
    """The client-mode auth Secret (:func:`occam.kubernetes.objects.auth_secret`) plus the driver's key file.

    Executors read the base64 text by reference, as in client mode; the driver pod mounts the Secret and
    reads the raw bytes under :data:`DRIVER_KEY`. Owned by the driver pod, not by any notebook pod.
    """
    secret = copy.deepcopy(auth_secret(spec, settings, secret_value))
    secret["metadata"]["ownerReferences"] = [owned_by(driver_pod)]
    secret["metadata"]["labels"][BATCH_JOB_LABEL] = "true"
    raw = driver_secret_file_bytes(secret_value)
    secret["data"][DRIVER_KEY] = base64.b64encode(raw).decode("ascii")
    return secret


def driver_container_status(pod: dict[str, Any]) -> dict[str, Any]:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == DRIVER_CONTAINER_NAME:
            return dict(status)
    return {}


def driver_exit_code(pod: dict[str, Any]) -> int | None:
    """The driver container's exit code once it has ended; None while it runs or has not started.

    A pod that failed without a terminated container (evicted, deleted) counts as exit code 1.
    """
    terminated = (driver_container_status(pod).get("state") or {}).get("terminated")
    if terminated is not None:
        return int(terminated.get("exitCode", 1))
    phase = (pod.get("status") or {}).get("phase")
    if phase == "Succeeded":
        return 0
    if phase == "Failed":
        return 1
    return None


def driver_started(pod: dict[str, Any]) -> bool:
    """Whether the driver container runs or has run, so that it has a log to read."""
    state = driver_container_status(pod).get("state") or {}
    return "running" in state or "terminated" in state or driver_exit_code(pod) is not None
