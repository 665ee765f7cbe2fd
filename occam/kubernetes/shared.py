"""The shared work volume: one filesystem that the notebook (the driver) and every executor pod mount.

Executors write a :class:`~occam.Dataset`'s Parquet files and the driver reads them; rank 0 writes fit
checkpoints and the driver finds them. On Kubernetes these are different pods, so a local path is
only shared when it lies on a volume that all of them mount at the same path: a ReadWriteMany
PersistentVolumeClaim, an NFS export, a CSI volume. The volume is given as a Kubernetes volume source
(``OCCAM_K8S_SHARED_VOLUME``, JSON, e.g. ``{"persistentVolumeClaim": {"claimName": "occam-work"}}``) and
a mount path (``OCCAM_K8S_SHARED_PATH``); the spawner mounts it in the notebook pod and the executor pod
template mounts it in every executor (:func:`volume`, :func:`volume_mount`).

:func:`unshared_path_problem` is the check that turns the executors' ``Mkdirs failed`` stack trace into
a message naming the fix; the Kubernetes backend answers with it for its sessions.
"""

from __future__ import annotations

import posixpath
from typing import Any

from occam.contract import DATA_PATH_ENV, DATA_VOLUME_ENV, DATA_VOLUME_NAME, SHARED_PATH_ENV, SHARED_VOLUME_ENV
from occam.contract import SHARED_VOLUME_NAME as VOLUME_NAME
from occam.errors import ConfigError

#: Volume sources that are never shared between pods.
_PER_POD_SOURCES = {
    "emptyDir": "an emptyDir belongs to one pod",
    "ephemeral": "an ephemeral volume belongs to one pod",
    "downwardAPI": "a downwardAPI volume is read-only",
    "configMap": "a configMap volume is read-only",
    "secret": "a secret volume is read-only",
    "projected": "a projected volume is read-only",
}

EXAMPLE = '{"persistentVolumeClaim": {"claimName": "occam-work"}}'

#: What to do when a path is not shared, appended to every such message.
FIX = (
    "ask the course admin to configure a shared work volume (occam.sharedWork in the chart) or set "
    f"{SHARED_VOLUME_ENV}/{SHARED_PATH_ENV}"
)


def check_shared_work(source: Any, path: Any) -> None:
    """Raise :class:`~occam.errors.ConfigError` unless ``source`` and ``path`` make a usable shared volume.

    Both or neither must be given. ``source`` is one Kubernetes volume source (a dict with one key,
    such as ``persistentVolumeClaim``, ``nfs``, ``csi`` or ``hostPath``, mapping to its fields);
    ``path`` is the absolute mount path, the same in the notebook and the executors.
    """
    if source is None and path is None:
        return
    if source is None or path is None:
        missing = SHARED_VOLUME_ENV if source is None else SHARED_PATH_ENV
        raise ConfigError(
            f"a shared work volume needs both {SHARED_VOLUME_ENV} (the volume source, e.g. {EXAMPLE}) and "
            f"{SHARED_PATH_ENV} (where it is mounted); {missing} is missing"
        )
    if not isinstance(source, dict) or len(source) != 1:
        raise ConfigError(
            f"shared volume {source!r} must be one Kubernetes volume source (a JSON object with one key), "
            f"e.g. {EXAMPLE} ({SHARED_VOLUME_ENV})"
        )
    ((kind, fields),) = source.items()
    if kind == "name":
        raise ConfigError(f"shared volume {source!r}: give the volume source only, without a name, e.g. {EXAMPLE}")
    if kind in _PER_POD_SOURCES:
        raise ConfigError(
            f"shared volume {kind!r} cannot be shared by the notebook and its executors ({_PER_POD_SOURCES[kind]}); "
            f"use a ReadWriteMany persistentVolumeClaim, nfs or csi volume, e.g. {EXAMPLE}"
        )
    if not isinstance(fields, dict):
        raise ConfigError(f"shared volume {source!r}: {kind} must map to an object of its fields, e.g. {EXAMPLE}")
    if not isinstance(path, str) or not posixpath.isabs(path):
        raise ConfigError(f"shared path {path!r} must be an absolute path such as /srv/occam-work ({SHARED_PATH_ENV})")
    if posixpath.normpath(path) == "/":
        raise ConfigError(f"shared path {path!r} cannot be the root directory ({SHARED_PATH_ENV})")


def volume(source: dict[str, Any]) -> dict[str, Any]:
    """The pod spec ``volumes`` entry of the shared work volume."""
    return {"name": VOLUME_NAME, **{kind: dict(fields) for kind, fields in source.items()}}


def volume_mount(path: str) -> dict[str, Any]:
    """The container's read-write ``volumeMounts`` entry of the shared work volume at ``path``."""
    return {"name": VOLUME_NAME, "mountPath": path, "readOnly": False}


def mount_in(pod_spec: dict[str, Any], source: dict[str, Any] | None, path: str | None) -> None:
    """Add the shared work volume ``source``, if any, to ``pod_spec``, mounted in its first container at
    ``path`` (the notebook's, every executor's and a batch driver's pod alike)."""
    if source is None or path is None:
        return
    pod_spec.setdefault("volumes", []).append(volume(source))
    pod_spec["containers"][0].setdefault("volumeMounts", []).append(volume_mount(path))


#: Volume sources with a ``readOnly`` field of their own (others are read-only through the mount alone).
_READ_ONLY_FIELD = ("persistentVolumeClaim", "nfs", "csi", "iscsi", "cephfs", "rbd", "azureFile", "flexVolume")


def check_shared_data(
    source: Any,
    path: Any,
    work_path: str | None = None,
    *,
    what: str = "course data volume",
    volume_env: str = DATA_VOLUME_ENV,
    path_env: str = DATA_PATH_ENV,
) -> None:
    """Raise :class:`~occam.errors.ConfigError` unless ``source`` and ``path`` make a usable course data volume
    (the chart's ``occam.sharedData``: one volume source, mounted read-only at the same absolute ``path`` in
    the notebook and every executor). Both or neither must be given; ``work_path`` is the shared work volume's
    mount path, which it must not share."""
    if source is None and path is None:
        return
    example = '{"persistentVolumeClaim": {"claimName": "course-datasets"}}'
    if source is None or path is None:
        missing = volume_env if source is None else path_env
        raise ConfigError(
            f"the {what} needs both {volume_env} (the volume source, e.g. {example}) and "
            f"{path_env} (where it is mounted); {missing} is missing"
        )
    if not isinstance(source, dict) or len(source) != 1 or not isinstance(next(iter(source.values())), dict):
        raise ConfigError(
            f"{what} {source!r} must be one Kubernetes volume source (a JSON object with one key "
            f"mapping to its fields), e.g. {example} ({volume_env})"
        )
    if not isinstance(path, str) or not posixpath.isabs(path) or posixpath.normpath(path) == "/":
        raise ConfigError(f"{what} path {path!r} must be an absolute path such as /data/course ({path_env})")
    if work_path is not None and posixpath.normpath(path) == posixpath.normpath(work_path):
        raise ConfigError(
            f"the {what} and the shared work volume are both mounted at {path}: give them different "
            f"paths ({path_env}, {SHARED_PATH_ENV})"
        )


def mount_data_in(
    pod_spec: dict[str, Any], source: dict[str, Any] | None, path: str | None, *, name: str = DATA_VOLUME_NAME
) -> None:
    """Add the course's data volume ``source``, if any, to ``pod_spec``, mounted read-only in its first container
    at ``path``, where the notebook mounts it: ``Dataset.from_parquet``/``from_images`` of a path under it then
    read in the executors as in the notebook. The course catalog (``name``
    ``occam.contract.CATALOG_VOLUME_NAME``) is mounted the same way."""
    if source is None or path is None:
        return
    ((kind, fields),) = source.items()
    fields = {**fields, "readOnly": True} if kind in _READ_ONLY_FIELD else dict(fields)
    pod_spec.setdefault("volumes", []).append({"name": name, kind: fields})
    mount = {"name": name, "mountPath": posixpath.normpath(path), "readOnly": True}
    pod_spec["containers"][0].setdefault("volumeMounts", []).append(mount)


def is_remote(path: str) -> bool:
    """Whether ``path`` is a URL of a filesystem that every pod reaches itself (``hdfs://``, ``s3a://``...)."""
    scheme, sep, _ = path.partition("://")
    return bool(sep) and scheme.lower() != "file"


def is_under(path: str, directory: str) -> bool:
    """Whether the local ``path`` (absolute, or a ``file://`` URL) is ``directory`` or inside it."""
    local = posixpath.normpath(path.removeprefix("file://"))
    folder = posixpath.normpath(directory)
    return local == folder or local.startswith(folder.rstrip("/") + "/")


def unshared_path_problem(path: str, *, shared_path: str | None, writer: str) -> str | None:
    """Why executor pods and the driver would not see the same files at ``path``, or None when they do.

    ``shared_path`` is the shared work volume's mount path (None: there is none). ``writer`` starts the
    message, e.g. "the dataset is converted". Remote URLs (``hdfs://``, ``s3a://``) are shared by
    definition.
    """
    if is_remote(path):
        return None
    if shared_path is None:
        return f"{writer} to {path}, which the notebook and the executor pods do not both mount: {FIX}"
    if is_under(path, shared_path):
        return None
    return (
        f"{writer} to {path}, which the notebook and the executor pods do not both mount: only the shared work "
        f"volume at {shared_path} is "
        f"mounted by both; use a folder under it (OCCAM_CACHE_DIR and OCCAM_CHECKPOINT_DIR, or cache_dir=... "
        "and checkpoint_dir=...)"
    )
