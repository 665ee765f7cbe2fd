"""Pure builders of the Kubernetes objects a cluster needs: labels, the executor pod template, the auth Secret.

Also the parsers of Kubernetes quantities (``"500m"``, ``"1Gi"``, ``"1e3"``) that quota checks rely on.
"""

from __future__ import annotations

import base64
import binascii
import copy
import math
import re
import secrets
from fractions import Fraction
from typing import Any

from occam.contract import (
    APP_LABEL,
    APP_NAME,
    CATALOG_VOLUME_NAME,
    CLUSTER_LABEL,
    COMPONENT_LABEL,
    EXECUTOR_COMPONENT,
    USER_LABEL,
)
from occam.errors import ConfigError
from occam.kubernetes import shared
from occam.kubernetes.settings import KubernetesSettings
from occam.spec import ClusterSpec

#: Name of the executor container in the pod template (``spark.kubernetes.executor.podTemplateContainerName``).
EXECUTOR_CONTAINER_NAME = "executor"
#: Key of the Spark RPC secret inside the cluster's Secret.
AUTH_SECRET_KEY = "spark-auth-secret"

#: Spark's executor memory overhead: 10% of the executor memory, at least 384 MiB.
MEMORY_OVERHEAD_FACTOR = 0.10
MEMORY_OVERHEAD_MIN_MIB = 384

_LABEL_VALUE_MAX = 63
_NAME_MAX = 40  # leaves room for Spark's "-exec-<id>" and Occam's suffixes within 63 characters


def label_value(text: str) -> str:
    """``text`` made a valid label value: at most 63 of ``[A-Za-z0-9._-]``, alphanumeric at both ends.

    Other characters become ``-``; the result may be empty (a valid label value, but not a useful one).
    """
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "-", text)[:_LABEL_VALUE_MAX]
    return cleaned.strip("._-")


def resource_name(spec: ClusterSpec) -> str:
    """The cluster's name as a DNS-1123 label prefix for object names: lowercase, ``[a-z0-9-]``, short."""
    name = re.sub(r"[^a-z0-9-]+", "-", spec.name.lower())[:_NAME_MAX].strip("-")
    return name or "occam"


def cluster_labels(
    spec: ClusterSpec, settings: KubernetesSettings, *, component: str = EXECUTOR_COMPONENT
) -> dict[str, str]:
    """Labels on everything a cluster creates; ``occam.io/cluster`` selects all of one cluster's objects."""
    labels = {
        APP_LABEL: APP_NAME,
        COMPONENT_LABEL: label_value(component),
        CLUSTER_LABEL: label_value(spec.name),
    }
    user = label_value(settings.user or "")
    if user:
        labels[USER_LABEL] = user
    return labels


def memory_overhead_mib(executor_memory_mib: int) -> int:
    """Spark's non-heap allowance for an executor of this much memory: ``max(384, 10%)`` MiB, as Spark rounds it."""
    return max(MEMORY_OVERHEAD_MIN_MIB, int(MEMORY_OVERHEAD_FACTOR * executor_memory_mib))


def executor_memory_overhead_mib(spec: ClusterSpec) -> int:
    """Spark's non-heap allowance per executor of ``spec``, in MiB (see :func:`memory_overhead_mib`)."""
    return memory_overhead_mib(spec.memory_bytes >> 20)


def executor_pod_memory_bytes(spec: ClusterSpec) -> int:
    """The memory one executor pod requests and is limited to: the executor's heap plus Spark's overhead.

    This is the figure Spark puts in the pod (it rounds the heap down to whole MiB), so quota checks and
    the pod template agree with the pods Spark creates.
    """
    return ((spec.memory_bytes >> 20) + executor_memory_overhead_mib(spec)) << 20


def locked_down_pod_spec(container: str, settings: KubernetesSettings, *, automount_token: bool) -> dict[str, Any]:
    """The pod spec every pod Occam creates starts from (executors, a batch job's driver): one container of the
    executor image, never restarted, non-root with no privilege escalation, no capabilities and the runtime's
    default seccomp profile (what Pod Security's ``restricted`` level asks). ``automount_token``: whether the
    pod gets its service account's token (only a batch driver, which creates its executors, needs it)."""
    return {
        "restartPolicy": "Never",
        "automountServiceAccountToken": automount_token,
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [
            {
                "name": container,
                "image": settings.executor_image,
                "imagePullPolicy": settings.image_pull_policy,
                "securityContext": {
                    "runAsNonRoot": True,
                    "allowPrivilegeEscalation": False,
                    "capabilities": {"drop": ["ALL"]},
                },
            }
        ],
    }


def executor_image(spec: ClusterSpec, settings: KubernetesSettings) -> str:
    """The image this cluster's executors run: the GPU executor image for a GPU cluster, when there is one."""
    if spec.gpu and settings.gpu_executor_image:
        return settings.gpu_executor_image
    return settings.executor_image


def executor_pod_template(spec: ClusterSpec, settings: KubernetesSettings) -> dict[str, Any]:
    """A v1 Pod manifest for ``spark.kubernetes.executor.podTemplateFile``.

    Spark fills in the command, environment and its own labels. The template adds the cluster labels,
    the resources (``spec.cores`` CPUs, :func:`executor_pod_memory_bytes`, and one ``gpu_resource`` when
    ``spec.gpu``, with the settings' GPU node selector and tolerations) and a locked-down security
    context that meets the "restricted" Pod Security Standard: the image must run as a numeric non-root
    user (Spark's images use UID 185). With a shared work volume in the settings, the executor container
    mounts it read-write at ``settings.shared_path``, where the notebook mounts it too; the course's data
    volume (``settings.data_volume``), when there is one, is mounted read-only at ``settings.data_path``.
    """
    memory = f"{executor_pod_memory_bytes(spec) >> 20}Mi"
    resources: dict[str, dict[str, str]] = {
        "requests": {"cpu": str(spec.cores), "memory": memory},
        "limits": {"cpu": str(spec.cores), "memory": memory},
    }
    pod_spec = locked_down_pod_spec(EXECUTOR_CONTAINER_NAME, settings, automount_token=False)
    pod_spec["containers"][0]["resources"] = resources
    pod_spec["containers"][0]["image"] = executor_image(spec, settings)
    if settings.service_account:
        pod_spec["serviceAccountName"] = settings.service_account
    shared.mount_in(pod_spec, settings.shared_volume, settings.shared_path)
    shared.mount_data_in(pod_spec, settings.data_volume, settings.data_path)
    shared.mount_data_in(pod_spec, settings.catalog_volume, settings.catalog_path, name=CATALOG_VOLUME_NAME)
    if spec.gpu:
        resources["limits"][settings.gpu_resource] = "1"
        if settings.gpu_node_selector:
            pod_spec["nodeSelector"] = dict(settings.gpu_node_selector)
        if settings.gpu_tolerations:
            pod_spec["tolerations"] = copy.deepcopy(settings.gpu_tolerations)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"labels": cluster_labels(spec, settings)},
        "spec": pod_spec,
    }


def owner_reference(settings: KubernetesSettings) -> dict[str, Any] | None:
    """An owner reference to the notebook pod, so Kubernetes deletes the owned object with it.

    None when the pod's UID is unknown: a reference needs it.
    """
    if not settings.pod_uid:
        return None
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "name": settings.pod_name,
        "uid": settings.pod_uid,
        "controller": False,
        "blockOwnerDeletion": True,
    }


def auth_secret_name(spec: ClusterSpec) -> str:
    """Name of the Secret holding a cluster's Spark RPC secret."""
    return f"{resource_name(spec)}-spark-auth"


def new_auth_secret_value() -> str:
    """A fresh Spark RPC secret: 32 random bytes, base64-encoded (see :func:`driver_secret_file_bytes`)."""
    return base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def driver_secret_file_bytes(secret_value: str) -> bytes:
    """What to write to the driver's ``spark.authenticate.secret.driver.file`` for ``secret_value``.

    Spark on Kubernetes reads a secret file's raw bytes and uses their base64 encoding as the key, while
    executors use ``_SPARK_AUTH_SECRET`` as it is; so the file holds the decoded value and the executors
    get the base64 text from the Secret.
    """
    try:
        raw = base64.b64decode(secret_value, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) < 16 or base64.b64encode(raw).decode("ascii") != secret_value:
        raise ValueError("the Spark auth secret must be the base64 encoding of at least 16 random bytes")
    return raw


def auth_secret(spec: ClusterSpec, settings: KubernetesSettings, secret_value: str) -> dict[str, Any]:
    """A v1 Secret holding the cluster's Spark RPC secret under :data:`AUTH_SECRET_KEY`.

    Labelled like the cluster, owned by the notebook pod when its UID is known, and immutable.
    ``secret_value`` must come from :func:`new_auth_secret_value` (base64 text).
    """
    driver_secret_file_bytes(secret_value)  # refuses a value the driver could not share with executors
    metadata: dict[str, Any] = {
        "name": auth_secret_name(spec),
        "namespace": settings.namespace,
        "labels": cluster_labels(spec, settings, component="auth-secret"),
    }
    owner = owner_reference(settings)
    if owner is not None:
        metadata["ownerReferences"] = [owner]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": "Opaque",
        "immutable": True,
        "data": {AUTH_SECRET_KEY: base64.b64encode(secret_value.encode("ascii")).decode("ascii")},
    }


# Kubernetes quantities: <sign><number><suffix>, the suffix binary (Ki..Ei), decimal (n, u, m, k, M..E) or an
# exponent (e3, E-2). The exponent is tried before the decimal "E" (exa), so "1E3" is 1000 and "1E" is 10**18.
_QUANTITY_RE = re.compile(r"([+-]?)(\d+(?:\.\d*)?|\.\d+)(?:(Ki|Mi|Gi|Ti|Pi|Ei)|[eE]([+-]?\d+)|(n|u|m|k|M|G|T|P|E))?")
_BINARY = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "Pi": 1 << 50, "Ei": 1 << 60}
_DECIMAL_EXPONENT = {"n": -9, "u": -6, "m": -3, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_MAX_EXPONENT = 64


def parse_quantity(value: str | int) -> Fraction:
    """The exact value of a Kubernetes quantity, e.g. ``"500m"`` -> 1/2, ``"1Ki"`` -> 1024, ``"1e3"`` -> 1000.

    Strict: anything else, and negative amounts, raise :class:`~occam.errors.ConfigError`.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    elif isinstance(value, str):
        text = value.strip()
    else:
        text = ""
    match = _QUANTITY_RE.fullmatch(text)
    if not match or match.group(1) == "-":
        raise ConfigError(f"{value!r} is not a Kubernetes quantity; write an amount like '2', '500m', '512Mi' or '1Gi'")
    number = Fraction(match.group(2) + ("0" if match.group(2).endswith(".") else ""))
    binary, exponent, decimal = match.group(3), match.group(4), match.group(5)
    if binary:
        return number * _BINARY[binary]
    power = int(exponent) if exponent else _DECIMAL_EXPONENT.get(decimal or "", 0)
    if abs(power) > _MAX_EXPONENT:
        raise ConfigError(f"{value!r}: the exponent is out of range for a resource amount")
    return number * Fraction(10) ** power


def quantity_to_bytes(value: str | int) -> int:
    """Whole bytes in a memory quantity (``"512Mi"``, ``"1G"``), rounded up as Kubernetes does."""
    return math.ceil(parse_quantity(value))


def quantity_to_millicores(value: str | int) -> int:
    """Thousandths of a CPU in a CPU quantity (``"500m"`` -> 500, ``"2"`` -> 2000), rounded up."""
    return math.ceil(parse_quantity(value) * 1000)
