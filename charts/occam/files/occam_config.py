"""Occam's part of the hub's configuration, shipped in the occam chart.

Zero to JupyterHub's ``jupyterhub_config.py`` runs every ``*.py`` file in
``/usr/local/etc/jupyterhub/jupyterhub_config.d`` after its own settings, with its config object ``c`` in
scope. The chart mounts its ConfigMap ``occam-hub-config`` there: this file and ``occam-values.json``,
the chart's ``occam`` values plus what the templates know (release namespace, hub pod labels).

:func:`hub_config` turns those values into traitlets settings (pure: dict in, dict out), and the
block at the end applies them to ``c``: OccamSpawner as the spawner class, the course limits, the
profiles (KubeSpawner profiles made by :mod:`spawner.profiles`, whose ``kubespawner_override`` sets the
image, the notebook's resources and GPUs, the namespace's GPU quota and where GPU pods go), the
shared data volume (executors mount it too, told by the notebook's ``OCCAM_K8S_DATA_VOLUME``/``_PATH``),
and the shared work volume (OccamSpawner mounts that one itself, in executors too).

It also makes Z2JH's hub URL reachable from the students' namespaces (:func:`qualified_hub_url`), and, in the
hub pod, restarts the hub when a ``helm upgrade`` changes these files (:func:`watch_config`): Z2JH restarts
its hub only for changes of its own values.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

#: Where the chart mounts the values; OCCAM_HUB_VALUES points elsewhere (tests).
MOUNTED_VALUES_FILE = "/usr/local/etc/jupyterhub/jupyterhub_config.d/occam-values.json"
VALUES_FILE = os.environ.get("OCCAM_HUB_VALUES", MOUNTED_VALUES_FILE)
#: Seconds between two looks at the mounted config. The kubelet rewrites a ConfigMap volume within about a
#: minute of a change (its sync period), so a ``helm upgrade`` that changes ``occam:`` restarts the hub within
#: one to two minutes.
WATCH_SECONDS = 10.0
SHARED_DATA_VOLUME = "occam-shared-data"
#: The course catalog: its read-only volume in notebooks, and the JupyterHub service that writes it.
CATALOG_VOLUME = "occam-catalog"
CATALOG_SERVICE = "occam-catalog"
CATALOG_SERVICE_PORT = 8080

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
    gpu_image = _image(values["images"]["gpuNotebook"]) if values["images"].get("gpuNotebook") else None
    if gpus:
        built = gpu_profile(
            entry["displayName"],
            gpus=gpus,
            node_selector=entry.get("nodeSelector"),
            tolerations=entry.get("tolerations"),
            course_limits=limits,
            **common,
        )
    elif limits["gpus"]:
        # A CPU notebook that borrows GPUs: its start_cluster(gpu=True) executors run the GPU image.
        built = cpu_profile(
            entry["displayName"],
            course_limits=limits,
            gpu_node_selector=entry.get("nodeSelector"),
            gpu_tolerations=entry.get("tolerations"),
            gpu_executor_image=entry.get("executorImage") or gpu_image,
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


def shared_data_env(values: dict[str, Any]) -> dict[str, str]:
    """The notebook's variables that make the Kubernetes backend mount ``occam.sharedData`` read-only in every
    executor pod too, at the notebook's path (empty when it is off)."""
    from occam.contract import DATA_PATH_ENV, DATA_VOLUME_ENV

    mounted = shared_data(values)
    if mounted is None:
        return {}
    volume, mount = mounted
    source = {kind: fields for kind, fields in volume.items() if kind != "name"}
    # KubeSpawner expands "{username}"-style fields in environment values: the JSON's braces are doubled to stay.
    volume_json = json.dumps(source, sort_keys=True).replace("{", "{{").replace("}", "}}")
    return {DATA_VOLUME_ENV: volume_json, DATA_PATH_ENV: mount["mountPath"]}


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


def catalog(values: dict[str, Any]) -> dict[str, Any] | None:
    """The course catalog from ``occam.catalog`` (None when it is off): the notebooks' read-only volume and mount,
    their ``OCCAM_CATALOG_DIR``/``OCCAM_CATALOG_URL``, and the hub's entry for the catalog service.

    The service runs in its own pod (templates/catalog.yaml): the hub knows it by URL only, an externally managed
    service with no token of its own (it identifies callers by their tokens), and routes ``/services/<name>/`` to it.
    """
    from occam.contract import CATALOG_DIR_ENV, CATALOG_PATH_ENV, CATALOG_URL_ENV, CATALOG_VOLUME_ENV

    settings = values.get("catalog") or {}
    if not settings.get("enabled"):
        return None
    ((kind, source),) = settings["volume"].items()
    namespace = values["hubNamespace"]
    domain = (values.get("spawner") or {}).get("clusterDomain") or "cluster.local"
    url = settings.get("url") or f"http://proxy-public.{namespace}.svc.{domain}/services/{CATALOG_SERVICE}/"
    read_only = {kind: {**source, "readOnly": True}}
    # KubeSpawner expands "{username}"-style fields in environment values: the JSON's braces are doubled to stay.
    volume_json = json.dumps(read_only, sort_keys=True).replace("{", "{{").replace("}", "}}")
    return {
        "volume": {"name": CATALOG_VOLUME, **read_only},
        "mount": {"name": CATALOG_VOLUME, "mountPath": settings["mountPath"], "readOnly": True},
        # The notebook reads the catalog at OCCAM_CATALOG_DIR and asks the service at OCCAM_CATALOG_URL; its
        # executors (and their ranks, in a model_fn) mount it too, told by OCCAM_K8S_CATALOG_VOLUME/_PATH.
        "environment": {
            CATALOG_DIR_ENV: settings["mountPath"],
            CATALOG_URL_ENV: url,
            CATALOG_VOLUME_ENV: volume_json,
            CATALOG_PATH_ENV: settings["mountPath"],
        },
        "service": {
            "name": CATALOG_SERVICE,
            "url": f"http://{CATALOG_SERVICE}.{namespace}.svc.{domain}:{CATALOG_SERVICE_PORT}",
            "display": False,
        },
    }


def network(values: dict[str, Any]) -> dict[str, Any]:
    """OccamSpawner's api_server_cidrs, dns_cidrs and allow_internet from ``occam.network``."""
    net = values.get("network") or {}
    return {
        "api_server_cidrs": list(net.get("apiServerCIDRs") or []),
        "dns_cidrs": list(net.get("dnsCIDRs") or []),
        "allow_internet": bool(net.get("internet", False)),
    }


def qualified_hub_url(url: str, namespace: str, cluster_domain: str) -> str:
    """``url`` with a bare Service host (``http://hub:8081``, what Z2JH sets) made fully qualified.

    Notebook pods run in the students' namespaces, where the short name ``hub`` resolves to nothing (or to a
    student's own Service called ``hub``): ``http://hub.<namespace>.svc.<cluster_domain>:8081`` reaches the hub's
    Service from any namespace. A host that already has a dot, or an IP address, is left as it is.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    if not host or "." in host or ":" in host:
        return url
    netloc = f"{host}.{namespace}.svc.{cluster_domain}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


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
        "executor_idle_minutes": float(values["course"].get("executorIdleMinutes", 0)),
        "kept_service_idle_minutes": float((values.get("serving") or {}).get("keptIdleMinutes", 0)),
        "max_gpus_in_use": int(values["course"].get("maxGpusInUse", 0)),
        "copied_pull_secrets": list(values.get("imagePullSecrets") or []),
        **shared_work(values),
        "tracking_uri": (values.get("tracking") or {}).get("uri") or "",
    }
    return {
        "JupyterHub": {"spawner_class": "occam"},
        "OccamSpawner": spawner,
        "KubeSpawner": {"profile_list": [profile(values, entry) for entry in values["profiles"]]},
    }


def apply(config: Any, values: dict[str, Any]) -> None:
    """Set :func:`hub_config`'s settings on ``config``, make Z2JH's hub URL reachable from the students'
    namespaces (:func:`qualified_hub_url`) and add the shared volume to what Z2JH mounted."""
    for section, settings in hub_config(values).items():
        for name, value in settings.items():
            setattr(config[section], name, value)
    connect_url = config.JupyterHub.get("hub_connect_url")
    if connect_url:
        domain = (values.get("spawner") or {}).get("clusterDomain") or "cluster.local"
        config.JupyterHub.hub_connect_url = qualified_hub_url(str(connect_url), values["hubNamespace"], domain)
    mounted = shared_data(values)
    if mounted is not None:
        volume, mount = mounted
        volumes = config.KubeSpawner.get("volumes")
        mounts = config.KubeSpawner.get("volume_mounts")
        # Z2JH sets both as dicts (name -> volume); keep whatever else it mounted.
        config.KubeSpawner.volumes = {**(volumes if isinstance(volumes, dict) else {}), SHARED_DATA_VOLUME: volume}
        config.KubeSpawner.volume_mounts = {**(mounts if isinstance(mounts, dict) else {}), SHARED_DATA_VOLUME: mount}
        # ... and the executors mount it too: the Kubernetes backend reads these in the notebook.
        environment = config.KubeSpawner.get("environment")
        config.KubeSpawner.environment = {
            **(environment if isinstance(environment, dict) else {}),
            **shared_data_env(values),
        }
    course_catalog = catalog(values)
    if course_catalog is not None:
        _add_volume(config, course_catalog["volume"], course_catalog["mount"], course_catalog["environment"])
        services = config.JupyterHub.get("services")
        config.JupyterHub.services = [*(services if isinstance(services, list) else []), course_catalog["service"]]


def _add_volume(config: Any, volume: dict[str, Any], mount: dict[str, Any], env: dict[str, str]) -> None:
    """Add ``volume`` (mounted as ``mount``) and ``env`` to notebook pods, keeping what Z2JH set (dicts by name)."""
    volumes = config.KubeSpawner.get("volumes")
    mounts = config.KubeSpawner.get("volume_mounts")
    environment = config.KubeSpawner.get("environment")
    config.KubeSpawner.volumes = {**(volumes if isinstance(volumes, dict) else {}), volume["name"]: volume}
    config.KubeSpawner.volume_mounts = {**(mounts if isinstance(mounts, dict) else {}), mount["name"]: mount}
    config.KubeSpawner.environment = {**(environment if isinstance(environment, dict) else {}), **env}


def config_fingerprint(paths: list[str]) -> str | None:
    """SHA-256 of the files' contents, in order; None while one cannot be read (the kubelet swapping them)."""
    digest = hashlib.sha256()
    for path in paths:
        try:
            with open(path, "rb") as f:
                digest.update(f.read())
        except OSError:
            return None
        digest.update(b"\0")
    return digest.hexdigest()


def watch_config(
    paths: list[str],
    on_change: Callable[[], None],
    *,
    every: float = WATCH_SECONDS,
    stop: threading.Event | None = None,
) -> threading.Thread:
    """Call ``on_change`` once when the contents of ``paths`` differ from what they are now; a daemon thread.

    Why: Z2JH restarts the hub only when its own ConfigMap or Secret changes (their checksums are annotations
    of the hub's pod template), and a parent chart cannot add to that template. Occam's settings are in its
    own ConfigMap, mounted as a volume the kubelet keeps up to date; when they change, the hub must start
    again to read them. ``stop`` (set it) ends the thread without calling anything.
    """
    stop = stop or threading.Event()
    first = config_fingerprint(paths)

    def run() -> None:
        while not stop.wait(every):
            now = config_fingerprint(paths)
            if now is not None and first is not None and now != first:
                on_change()
                return

    thread = threading.Thread(target=run, name="occam-config-watch", daemon=True)
    thread.start()
    return thread


def restart_hub() -> None:
    """End the hub the way ``kubectl rollout restart`` would: SIGTERM, which JupyterHub handles by shutting down
    cleanly (Z2JH keeps the students' servers running); Kubernetes then starts the container again, and it reads
    the new settings. The pod, its database volume and the proxy stay."""
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} Occam's hub settings changed (helm upgrade): restarting the hub")
    os.kill(os.getpid(), signal.SIGTERM)


def load(path: str = VALUES_FILE) -> dict[str, Any]:
    with open(path) as f:
        values: dict[str, Any] = json.load(f)
    return values


# Run by Z2JH's jupyterhub_config.py (exec, with its ``c`` in scope); importing this file does nothing.
if "c" in globals() and type(globals()["c"]).__name__ == "Config":
    apply(globals()["c"], load())
    if VALUES_FILE == MOUNTED_VALUES_FILE:
        # In the hub pod only (tests point OCCAM_HUB_VALUES elsewhere): restart when a helm upgrade changes
        # this file or the values next to it.
        watch_config([VALUES_FILE, os.path.join(os.path.dirname(VALUES_FILE), "occam_config.py")], restart_hub)
