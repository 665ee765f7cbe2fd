"""Pure builders of a model service on Kubernetes: a Deployment of the Occam image running the serving process
(:mod:`occam.models.serving_app`), a ClusterIP Service in front of it, and the Secret holding its token. A kept
service with an idle limit runs as a Job instead (:func:`kept_job`): its process exits after the limit with no
request, the Job finishes and the Job controller deletes it (``ttlSecondsAfterFinished``), and the garbage
collector deletes its Service and Secret, which it owns (:func:`owned_by`).

The pod starts from :func:`~occam.kubernetes.objects.locked_down_pod_spec` (Pod Security ``restricted``, no
service-account token), requests what it is limited to (so the namespace's quota counts it), reads the model
from the shared work volume mounted read-only, and takes its token from the Secret as a file (read-only), never
from its environment or command line. Unless the student keeps it, every object is owned by the notebook pod,
so Kubernetes deletes the service with the notebook. :mod:`occam.models.serving_pod` creates them when
``occam.models.serve`` runs in a notebook pod.

The browser reaches the service through the notebook's jupyter-server-proxy,
``<prefix>proxy/absolute/<service>:80/``, behind JupyterHub's login: the notebook image's Jupyter config
allows exactly the hosts :func:`proxy_host_allowed` accepts (the namespace's own ``occam-serve-*``
Services, by their short names, which resolve only in the notebook's namespace).
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
    MODEL_SERVICE_LABEL,
    MODEL_SERVICE_PREFIX,
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
#: A model service's short name: what jupyter-server-proxy may forward to (no dot, so no other namespace).
_PROXY_HOST = re.compile(re.escape(MODEL_SERVICE_PREFIX) + r"[a-z0-9]([a-z0-9-]{0,50}[a-z0-9])?")


def service_name(model: str, version: int) -> str:
    """``occam-serve-<model>-v<version>``, a DNS-1123 label (63 characters at most; a long name keeps a hash)."""
    base = re.sub(r"[^a-z0-9-]+", "-", model.lower()).strip("-") or "model"
    prefix = MODEL_SERVICE_PREFIX
    name = f"{prefix}{base}-v{version}"
    if len(name) > 63:
        digest = hashlib.sha256(model.encode()).hexdigest()[:8]
        name = f"{prefix}{base[: 63 - len(f'{prefix}-{digest}-v{version}')]}-{digest}-v{version}"
    return name


def proxy_host_allowed(host: str) -> bool:
    """Whether the notebook's jupyter-server-proxy may forward to ``host``: a model service's short name only.

    A short name resolves in the notebook's own namespace (the pod's DNS search path), so a student reaches
    their own services and nothing else; an address or a dotted name (another namespace) is refused.
    """
    return isinstance(host, str) and _PROXY_HOST.fullmatch(host) is not None


def host_allowlist(handler: object, host: str) -> bool:
    """``c.ServerProxy.host_allowlist`` of the notebook image's Jupyter config (jupyter-server-proxy calls it
    with the request handler): :func:`proxy_host_allowed`, plus the local hosts it allows by default."""
    return host in ("localhost", "127.0.0.1") or proxy_host_allowed(host)


def proxy_base(service_prefix: str | None, name: str) -> str:
    """The path under which the service answers when the notebook runs under JupyterHub:
    ``<prefix>proxy/absolute/<name>:80`` (jupyter-server-proxy passes the whole path on, so the Swagger UI's
    absolute links stay right); "" outside JupyterHub."""
    if not service_prefix:
        return ""
    return f"{service_prefix.rstrip('/')}/proxy/absolute/{name}:{SERVICE_PORT}"


def in_cluster_url(settings: KubernetesSettings, name: str, base_path: str = "") -> str:
    """The service's address from a pod of the cluster: its Service's DNS name, port 80."""
    return f"http://{name}.{settings.namespace}.svc:{SERVICE_PORT}{base_path}"


def serving_labels(settings: KubernetesSettings, model: str, name: str | None = None) -> dict[str, str]:
    """Labels on every object of a model service; the Deployment's pods are selected by all of them.

    ``name`` (the service's, :func:`service_name`) tells two versions of one model apart.
    """
    labels = {APP_LABEL: APP_NAME, COMPONENT_LABEL: SERVING_COMPONENT, MODEL_LABEL: label_value(model)}
    if name:
        labels[MODEL_SERVICE_LABEL] = name
    user = label_value(settings.user or "")
    if user:
        labels[USER_LABEL] = user
    return labels


def selector(labels: dict[str, str]) -> str:
    """``labels`` as a label selector string (what the API's list calls take)."""
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


def _metadata(settings: KubernetesSettings, name: str, model: str, keep: bool) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": settings.namespace,
        "labels": serving_labels(settings, model, name),
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


def _pod_spec(
    settings: KubernetesSettings,
    *,
    name: str,
    model_dir: str,
    cpu: str,
    memory: str,
    max_bytes: int,
    base_path: str,
    restart_policy: str,
    idle_seconds: float = 0,
) -> dict[str, Any]:
    if settings.shared_volume is None or settings.shared_path is None:
        raise ConfigError(f"serving on Kubernetes reads the model from the shared work volume: {shared.FIX}")
    if not shared.is_under(model_dir, settings.shared_path):
        raise ConfigError(f"{model_dir} is not on the shared work volume ({settings.shared_path}): {shared.FIX}")
    pod_spec = locked_down_pod_spec(CONTAINER_NAME, settings, automount_token=False)
    pod_spec["restartPolicy"] = restart_policy  # a served model's pod restarts; the rest stays locked down
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
    if base_path:
        container["command"] += ["--proxy-base", base_path]
    if idle_seconds:
        container["command"] += ["--idle-exit", f"{idle_seconds:g}"]
    container["ports"] = [{"name": "http", "containerPort": SERVING_PORT, "protocol": "TCP"}]
    container["resources"] = {"requests": {"cpu": cpu, "memory": memory}, "limits": {"cpu": cpu, "memory": memory}}
    # Every route wants the token, so the probe only checks that the port listens.
    container["readinessProbe"] = {"tcpSocket": {"port": SERVING_PORT}, "periodSeconds": 5}
    shared.mount_in(pod_spec, settings.shared_volume, settings.shared_path)
    for mount in container["volumeMounts"]:
        mount["readOnly"] = True  # the service only reads its (immutable) model
    # A Secret's files belong to root, and the image's user is not root: 0444 lets it read its token. Only the
    # service's own process runs in this container; the pod's filesystem is no one else's to read. (fsGroup
    # would allow 0440, but it would also re-own the student's work volume, mounted here.)
    pod_spec["volumes"].append({"name": "token", "secret": {"secretName": name, "defaultMode": 0o444}})
    container["volumeMounts"].append({"name": "token", "mountPath": TOKEN_DIR, "readOnly": True})
    return pod_spec


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
    base_path: str = "",
) -> dict[str, Any]:
    """A one-replica Deployment serving the store version in ``model_dir`` (a path on the shared work volume),
    under ``base_path`` (:func:`proxy_base`)."""
    name = service_name(model, version)
    labels = serving_labels(settings, model, name)
    pod_spec = _pod_spec(
        settings,
        name=name,
        model_dir=model_dir,
        cpu=cpu,
        memory=memory,
        max_bytes=max_bytes,
        base_path=base_path,
        restart_policy="Always",
    )
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


#: A kept service's Job: how often its pod may fail (a crash restarts it) before the Job gives up.
KEPT_BACKOFF_LIMIT = 3
#: How long a finished kept service's Job (and its pod) stays before the Job controller deletes it.
KEPT_TTL_SECONDS = 60


def kept_job(
    settings: KubernetesSettings,
    *,
    model: str,
    version: int,
    model_dir: str,
    idle_minutes: float,
    cpu: str = "1",
    memory: str = "2Gi",
    max_bytes: int = 8 * 1024 * 1024,
    base_path: str = "",
) -> dict[str, Any]:
    """A kept service with an idle limit: a Job of one pod whose process exits (status 0) after ``idle_minutes``
    with no request, so the Job completes and its pod stops counting in the quota; ``ttlSecondsAfterFinished``
    then deletes the Job and its pod, and the garbage collector its Service and Secret (:func:`owned_by`). A
    crash restarts the pod (``OnFailure``), at most :data:`KEPT_BACKOFF_LIMIT` times. Not owned by the notebook.
    """
    if isinstance(idle_minutes, bool) or not idle_minutes > 0:
        raise ConfigError(f"a kept service's idle limit {idle_minutes!r} must be more than 0 minutes")
    name = service_name(model, version)
    labels = serving_labels(settings, model, name)
    pod_spec = _pod_spec(
        settings,
        name=name,
        model_dir=model_dir,
        cpu=cpu,
        memory=memory,
        max_bytes=max_bytes,
        base_path=base_path,
        restart_policy="OnFailure",
        idle_seconds=idle_minutes * 60,
    )
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _metadata(settings, name, model, keep=True),
        "spec": {
            "completions": 1,
            "parallelism": 1,
            "backoffLimit": KEPT_BACKOFF_LIMIT,
            "ttlSecondsAfterFinished": KEPT_TTL_SECONDS,
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }


def owned_by(manifest: dict[str, Any], owner: dict[str, Any]) -> dict[str, Any]:
    """``manifest`` with an owner reference to ``owner`` (an object as the API returned it, with its uid), so
    the garbage collector deletes it with ``owner``: a kept service's Service and Secret, owned by its Job."""
    meta = owner["metadata"]
    if not meta.get("uid"):
        raise ConfigError(f"{owner.get('kind')} {meta.get('name')} has no uid yet: create it before its dependents")
    reference = {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": False,
        # Blocking the owner's deletion would need rights on jobs/finalizers where that is enforced; nothing
        # needs the Job to wait for its Service and Secret.
        "blockOwnerDeletion": False,
    }
    owned = {**manifest, "metadata": {**manifest["metadata"]}}
    owned["metadata"]["ownerReferences"] = [*manifest["metadata"].get("ownerReferences", []), reference]
    return owned


def cluster_ip_service(settings: KubernetesSettings, *, model: str, version: int, keep: bool = False) -> dict:
    """The ClusterIP Service in front of the Deployment's pod: port 80 to the service's port."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(settings, service_name(model, version), model, keep),
        "spec": {
            "type": "ClusterIP",
            "selector": serving_labels(settings, model, service_name(model, version)),
            "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": SERVING_PORT, "protocol": "TCP"}],
        },
    }
