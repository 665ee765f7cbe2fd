"""Pure builders of a model service on Kubernetes: a Deployment of the Occam image running the serving process
(:mod:`occam.models.serving_app`), a ClusterIP Service in front of it, and the Secret holding its token.

The pod starts from :func:`~occam.kubernetes.objects.locked_down_pod_spec` (Pod Security ``restricted``, no
service-account token), requests what it is limited to (so the namespace's quota counts it), reads the model
from the shared work volume mounted read-only, and takes its token from the Secret as a file (mode 0400), never
from its environment or command line. Unless the student keeps it, every object is owned by the notebook pod,
so Kubernetes deletes the service with the notebook. Not yet used by ``occam.models.serve``, which runs the
service inside the notebook's pod (reached through JupyterHub's proxy); these are the objects a Kubernetes
backend for it creates.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from occam.contract import (
    APP_LABEL,
    APP_NAME,
    COMPONENT_LABEL,
    MODEL_LABEL,
    SERVING_COMPONENT,
    SERVING_PORT,
    USER_LABEL,
)
from occam.errors import ConfigError
from occam.kubernetes import shared
from occam.kubernetes.objects import label_value, locked_down_pod_spec, owner_reference
from occam.kubernetes.settings import KubernetesSettings

CONTAINER_NAME = "model"
TOKEN_KEY = "token"
TOKEN_DIR = "/var/run/occam-serve"
#: The Service's port; it forwards to :data:`~occam.contract.SERVING_PORT` in the pod.
SERVICE_PORT = 80


def service_name(model: str, version: int) -> str:
    """``occam-serve-<model>-v<version>``, a DNS-1123 label (63 characters at most; a long name keeps a hash)."""
    base = re.sub(r"[^a-z0-9-]+", "-", model.lower()).strip("-") or "model"
    name = f"occam-serve-{base}-v{version}"
    if len(name) > 63:
        digest = hashlib.sha256(model.encode()).hexdigest()[:8]
        name = f"occam-serve-{base[: 63 - len(f'occam-serve--{digest}-v{version}')]}-{digest}-v{version}"
    return name


def serving_labels(settings: KubernetesSettings, model: str) -> dict[str, str]:
    """Labels on every object of a model service; the Deployment's pods are selected by all of them."""
    labels = {APP_LABEL: APP_NAME, COMPONENT_LABEL: SERVING_COMPONENT, MODEL_LABEL: label_value(model)}
    user = label_value(settings.user or "")
    if user:
        labels[USER_LABEL] = user
    return labels


def _metadata(settings: KubernetesSettings, name: str, model: str, keep: bool) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": settings.namespace,
        "labels": serving_labels(settings, model),
    }
    owner = None if keep else owner_reference(settings)
    if owner is not None:
        metadata["ownerReferences"] = [owner]
    return metadata


def token_secret(settings: KubernetesSettings, model: str, version: int, token: str, *, keep: bool = False) -> dict:
    """The Secret with the service's token, mounted as a file in its pod."""
    if not token or any(c.isspace() for c in token):
        raise ConfigError("a model service's token must be a non-empty secret without spaces")
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _metadata(settings, service_name(model, version), model, keep),
        "type": "Opaque",
        "stringData": {TOKEN_KEY: token},
    }


def deployment(
    settings: KubernetesSettings,
    *,
    model: str,
    version: int,
    model_dir: str,
    cpu: str = "1",
    memory: str = "2Gi",
    max_bytes: int = 8 * 1024 * 1024,
    keep: bool = False,
) -> dict[str, Any]:
    """A one-replica Deployment serving the store version in ``model_dir`` (a path on the shared work volume)."""
    if settings.shared_volume is None or settings.shared_path is None:
        raise ConfigError(f"serving on Kubernetes reads the model from the shared work volume: {shared.FIX}")
    if not shared.is_under(model_dir, settings.shared_path):
        raise ConfigError(f"{model_dir} is not on the shared work volume ({settings.shared_path}): {shared.FIX}")
    name = service_name(model, version)
    labels = serving_labels(settings, model)
    pod_spec = locked_down_pod_spec(CONTAINER_NAME, settings, automount_token=False)
    pod_spec["restartPolicy"] = "Always"  # a Deployment's pods must restart; the rest stays locked down
    container = pod_spec["containers"][0]
    container["command"] = [
        "python",
        "-m",
        "occam.models.serving_app",
        "--model-dir",
        model_dir,
        "--host",
        "0.0.0.0",
        "--port",
        str(SERVING_PORT),
        "--ready-file",
        "/tmp/occam-serve-ready.json",
        "--max-bytes",
        str(max_bytes),
        "--token-file",
        f"{TOKEN_DIR}/{TOKEN_KEY}",
    ]
    container["ports"] = [{"name": "http", "containerPort": SERVING_PORT, "protocol": "TCP"}]
    container["resources"] = {"requests": {"cpu": cpu, "memory": memory}, "limits": {"cpu": cpu, "memory": memory}}
    # Every route wants the token, so the probe only checks that the port listens.
    container["readinessProbe"] = {"tcpSocket": {"port": SERVING_PORT}, "periodSeconds": 5}
    shared.mount_in(pod_spec, settings.shared_volume, settings.shared_path)
    for mount in container["volumeMounts"]:
        mount["readOnly"] = True  # the service only reads its (immutable) model
    pod_spec["volumes"].append({"name": "token", "secret": {"secretName": name, "defaultMode": 0o400}})
    container["volumeMounts"].append({"name": "token", "mountPath": TOKEN_DIR, "readOnly": True})
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(settings, name, model, keep),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }


def cluster_ip_service(settings: KubernetesSettings, *, model: str, version: int, keep: bool = False) -> dict:
    """The ClusterIP Service in front of the Deployment's pod: port 80 to the service's port."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(settings, service_name(model, version), model, keep),
        "spec": {
            "type": "ClusterIP",
            "selector": serving_labels(settings, model),
            "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": SERVING_PORT, "protocol": "TCP"}],
        },
    }
