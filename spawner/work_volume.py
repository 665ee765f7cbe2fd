"""Each student's own work volume: a ReadWriteMany claim the spawner makes in the student's namespace.

The dataset cache and fit checkpoints live on the shared work volume, which the notebook and every
executor mount (they run on any node). One NFS export for a whole course lets students read and spoil
each other's caches and checkpoints; a claim the admin makes in each namespace does not exist before the
student's first spawn. So, given a StorageClass that provisions ReadWriteMany volumes (NFS, CephFS,
a cloud file store), the spawner makes the claim :data:`WORK_CLAIM` in each student's namespace itself,
as Zero to JupyterHub does for home directories; its size counts against the namespace's storage quota
(``requests.storage``), and a claim of one namespace cannot be mounted from another.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from occam.kubernetes.objects import parse_quantity

#: The claim's name, the same in every student namespace.
WORK_CLAIM = "occam-work"
_CLASS_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")


def check_work_storage(storage_class: str, size: str) -> None:
    """ValueError naming the setting if ``storage_class`` or ``size`` cannot make a claim."""
    if not _CLASS_NAME.fullmatch(storage_class or ""):
        raise ValueError(
            f"work_storage_class={storage_class!r} must name a StorageClass that provisions ReadWriteMany volumes "
            "(kubectl get storageclass), e.g. 'nfs-client'"
        )
    try:
        if parse_quantity(size) <= 0:
            raise ValueError(size)
    except (TypeError, ValueError):
        raise ValueError(f"work_storage_size={size!r} must be a storage quantity such as '10Gi'") from None


def work_claim(namespace: str, labels: Mapping[str, str], storage_class: str, size: str) -> dict[str, Any]:
    """The student's ReadWriteMany PersistentVolumeClaim :data:`WORK_CLAIM` of ``size`` from ``storage_class``."""
    check_work_storage(storage_class, size)
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": WORK_CLAIM, "namespace": namespace, "labels": dict(labels)},
        "spec": {
            "accessModes": ["ReadWriteMany"],
            "storageClassName": storage_class,
            "resources": {"requests": {"storage": size}},
        },
    }


def work_volume_source() -> dict[str, Any]:
    """The volume source the notebook and executors mount: the student's own claim."""
    return {"persistentVolumeClaim": {"claimName": WORK_CLAIM}}


__all__ = ["WORK_CLAIM", "check_work_storage", "work_claim", "work_volume_source"]
