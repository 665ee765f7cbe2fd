"""A dynamic volume provisioner for the real node: occam-hostpath-provisioner on this machine, and its StorageClass.

The node has no storage system, so the students' ReadWriteMany work volumes (:mod:`spawner.work_volume`)
come from :class:`VolumeProvisioner`: ``occam-hostpath-provisioner`` (sig-storage-lib-external-provisioner's
hostpath example as a host process, scripts/hostpath-provisioner/main.go, built by scripts/k8s-binaries.sh)
watches the API server with a service account of its own and, for each claim of the StorageClass
:data:`STORAGE_CLASS`, makes a directory under a temporary folder of this machine and a hostPath
PersistentVolume on it, pinned to the real node, with the claim's access modes. The kubelet runs on this
machine too, so it mounts that directory into every pod of the claim: the one-node cluster's stand-in for
NFS or CephFS. Deleting a claim deletes its volume and directory (reclaim policy Delete).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from tests.kubernetes.controlplane import ControlPlane
from tests.kubernetes.pki import write_kubeconfig
from tests.kubernetes.processes import Harness
from tests.kubernetes.student import wait_until

from .agentaccount import create_agent_account, delete_agent_account

BINARY = "occam-hostpath-provisioner"
PROVISIONER = "occam.test/hostpath"
STORAGE_CLASS = "occam-test-hostpath"
ACCOUNT = "occam-test-hostpath-provisioner"
#: What sig-storage-lib-external-provisioner's controller reads and writes (its example's ClusterRole).
RULES = [
    {"apiGroups": [""], "resources": ["persistentvolumes"], "verbs": ["get", "list", "watch", "create", "delete"]},
    {"apiGroups": [""], "resources": ["persistentvolumeclaims"], "verbs": ["get", "list", "watch", "update"]},
    {"apiGroups": ["storage.k8s.io"], "resources": ["storageclasses"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "update", "patch"]},
]


class ProvisionerError(RuntimeError):
    pass


def missing_provisioner(bin_dir: Path) -> str | None:
    """Why the provisioner cannot run here (with the fix); None if it can."""
    if not os.access(bin_dir / BINARY, os.X_OK):
        return f"{bin_dir / BINARY}: `bash scripts/k8s-binaries.sh` builds it"
    return None


class VolumeProvisioner(Harness):
    """``with VolumeProvisioner(control_plane, admin, node_name) as p:`` claims of ``p.storage_class`` get volumes."""

    error = ProvisionerError
    storage_class = STORAGE_CLASS

    def __init__(self, control_plane: ControlPlane, admin: Any, node_name: str, *, timeout: float = 60.0) -> None:
        super().__init__(timeout)
        self.control_plane = control_plane
        self.admin = admin
        self.node_name = node_name
        self.root: Path | None = None

    def start(self) -> None:
        from kubernetes import client

        self.dir = Path(tempfile.mkdtemp(prefix="occam-hpp-"))
        # 0700 (mkdtemp): the kubelet, as root, bind-mounts each volume's own directory into its pods; nobody
        # else on this machine reaches them.
        self.root = Path(tempfile.mkdtemp(prefix="occam-volumes-"))
        storage = client.StorageV1Api(self.admin)
        storage_class = {
            "metadata": {"name": STORAGE_CLASS},
            "provisioner": PROVISIONER,
            "reclaimPolicy": "Delete",
            "volumeBindingMode": "Immediate",
        }
        token = create_agent_account(
            self.admin, ACCOUNT, RULES, also=[lambda: storage.create_storage_class(storage_class)]
        )
        ca = self.admin.configuration.ssl_ca_cert
        ca_pem = Path(ca).read_bytes() if ca else None
        kubeconfig = write_kubeconfig(
            self.dir / "provisioner.kubeconfig", self.control_plane.server, ca_pem, {"token": token}
        )
        os.chmod(kubeconfig, 0o600)
        args = [
            str(self.control_plane.bin_dir / BINARY),
            f"--kubeconfig={kubeconfig}",
            f"--provisioner-name={PROVISIONER}",
            f"--root={self.root}",
            f"--node={self.node_name}",
            "--v=2",
        ]
        self.spawn(BINARY, args, {"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
        self.wait_for(
            "the provisioner's controller to start", BINARY, lambda: "Started provisioner controller" in self._log()
        )

    def _log(self) -> str:
        return self.log(BINARY).read_text(errors="replace")

    def volumes(self) -> list[Any]:
        """The PersistentVolumes of :data:`STORAGE_CLASS`."""
        from kubernetes import client

        found = client.CoreV1Api(self.admin).list_persistent_volume().items
        return [pv for pv in found if pv.spec.storage_class_name == STORAGE_CLASS]

    def stop(self) -> None:
        from kubernetes import client

        core = client.CoreV1Api(self.admin)
        if self.running(BINARY):
            # Claims deleted with their namespaces release their volumes: the provisioner deletes them (and
            # their directories) before it goes.
            with contextlib.suppress(TimeoutError):
                wait_until("the provisioner to delete the released volumes", lambda: not self.volumes(), timeout=60)
        self.kill_all(grace=10)
        for pv in self.volumes():  # what it did not get to
            with contextlib.suppress(client.ApiException):
                core.delete_persistent_volume(pv.metadata.name)
        delete_agent_account(
            self.admin, ACCOUNT, also=[lambda: client.StorageV1Api(self.admin).delete_storage_class(STORAGE_CLASS)]
        )
        for directory in (self.root, self.dir):
            if directory is not None:
                shutil.rmtree(directory, ignore_errors=True)
        self.root = self.dir = None
