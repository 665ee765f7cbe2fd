"""A real Kubernetes control plane on loopback for the ``kubernetes`` test tier: etcd, API server, controllers,
scheduler, and kwok standing in for kubelets.

Everything lives in one temporary directory (certificates, kubeconfigs, etcd's data, each component's
log) and listens on 127.0.0.1 only, on free ports. The API server enforces what a real cluster does
(TLS client certificates and service-account tokens, RBAC, the ServiceAccount, LimitRanger and
ResourceQuota admission plugins) and is configured as kubeadm configures one: privileged pods are allowed
(``--allow-privileged=true``) unless a policy forbids them, Pod Security admission is on with the
``privileged`` level as the cluster's default (:data:`ADMISSION_CONFIG`), so a namespace's
``pod-security.kubernetes.io`` labels are what refuse a pod, and ValidatingAdmissionPolicy is on (built
in since 1.30), so the chart's policy is enforced as on a real cluster. The controller manager runs its default controllers (garbage
collector, resource quota, service accounts, ...); the scheduler places pods on kwok's fake nodes,
where kwok reports them Running without running anything (see :mod:`.kwok_stages`).

Each component starts in its own process group and is killed with it; if the test process dies, the
kernel kills them too (``PR_SET_PDEATHSIG``). Every wait has a deadline, and its error names what it
waited for with the tail of that component's log.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import tempfile
import urllib.request
from pathlib import Path

from . import kwok_stages
from .pki import Pki, write_kubeconfig
from .processes import Harness

SERVICE_CIDR = "10.96.0.0/16"
POD_CIDR = "10.244.0.0/16"
NODE_IP = "10.0.0.1"  # only written into node and pod status: nothing listens there
ISSUER = "https://kubernetes.default.svc.cluster.local"

#: The admission plugins, named even where they are on by default, so that none can go missing unnoticed.
ADMISSION_PLUGINS = (
    "NodeRestriction",
    "ServiceAccount",
    "LimitRanger",
    "ResourceQuota",
    "PodSecurity",
    "ValidatingAdmissionPolicy",
)

#: Pod Security admission as kubeadm (and every managed cluster) leaves it: namespaces without labels get
#: ``privileged``, nothing is exempt. Only a namespace's labels make it refuse a pod.
ADMISSION_CONFIG = {
    "apiVersion": "apiserver.config.k8s.io/v1",
    "kind": "AdmissionConfiguration",
    "plugins": [
        {
            "name": "PodSecurity",
            "configuration": {
                "apiVersion": "pod-security.admission.config.k8s.io/v1",
                "kind": "PodSecurityConfiguration",
                "defaults": {
                    "enforce": "privileged",
                    "enforce-version": "latest",
                    "audit": "privileged",
                    "audit-version": "latest",
                    "warn": "privileged",
                    "warn-version": "latest",
                },
                "exemptions": {"usernames": [], "runtimeClasses": [], "namespaces": []},
            },
        }
    ],
}


class ControlPlaneError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _remove_stale_dirs(base: Path) -> None:
    """Directories of control planes whose test process died without cleaning up (SIGKILL)."""
    for path in base.glob("occam-k8s-*"):
        try:
            pid = int((path / "owner.pid").read_text())
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except (OSError, ValueError):
            continue


class ControlPlane(Harness):
    """``with ControlPlane(bin_dir) as cp:`` starts the control plane; ``cp.kubeconfig`` is an admin's."""

    error = ControlPlaneError

    def __init__(self, bin_dir: Path, *, nodes: list[dict] | None = None, timeout: float = 120.0) -> None:
        self.bin_dir = Path(bin_dir)
        self.nodes = kwok_stages.DEFAULT_NODES if nodes is None else nodes
        super().__init__(timeout)
        self.server = ""
        self.kubeconfig = Path()
        self.ca_file = Path()

    def stop(self) -> None:
        """Kill every component (process group), newest first; remove the directory. Idempotent.

        With ``OCCAM_KEEP_CONTROL_PLANE=1`` the directory (logs, certificates, kubeconfigs) is kept.
        """
        self.kill_all()
        if self.dir is not None and os.environ.get("OCCAM_KEEP_CONTROL_PLANE") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    # -- start-up --------------------------------------------------------------------------------------

    def start(self) -> None:
        # etcd fsyncs every write: in memory (/dev/shm) start-up takes seconds instead of tens of seconds.
        base = Path("/dev/shm" if os.access("/dev/shm", os.W_OK) else tempfile.gettempdir())
        _remove_stale_dirs(base)
        self.dir = Path(tempfile.mkdtemp(prefix="occam-k8s-", dir=base))
        (self.dir / "owner.pid").write_text(str(os.getpid()))
        pki_dir = self.dir / "pki"
        pki_dir.mkdir()
        pki = Pki(pki_dir)
        ports = {name: free_port() for name in ("etcd", "etcd-peer", "apiserver", "kcm", "scheduler", "kwok")}
        self.server = f"https://127.0.0.1:{ports['apiserver']}"
        serving = pki.issue(
            "apiserver",
            common_name="kube-apiserver",
            dns_names=("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"),
            ip_addresses=("127.0.0.1", "10.96.0.1"),
            server=True,
        )
        # What the API server shows a kubelet when it proxies a pod's log or exec (a real node's only).
        kubelet_client = pki.issue(
            "apiserver-kubelet-client", common_name="kube-apiserver-kubelet-client", organizations=("system:masters",)
        )
        sa = pki.service_account_keys()
        kubeconfigs = {}
        for name, user, groups in (
            ("admin", "occam-test-admin", ("system:masters",)),
            ("kcm", "system:kube-controller-manager", ()),
            ("scheduler", "system:kube-scheduler", ()),
        ):
            pair = pki.issue(name, common_name=user, organizations=groups)
            kubeconfigs[name] = write_kubeconfig(
                self.dir / f"{name}.kubeconfig",
                self.server,
                pki.ca_pem,
                {"client-certificate": str(pair.cert), "client-key": str(pair.key)},
            )
        self.kubeconfig = kubeconfigs["admin"]
        self.ca_file = pki.ca.cert
        b = self.bin_dir
        etcd_url = f"http://127.0.0.1:{ports['etcd']}"
        peer_url = f"http://127.0.0.1:{ports['etcd-peer']}"
        self.spawn(
            "etcd",
            [str(b / "etcd"), "--name=occam", f"--data-dir={self.dir / 'etcd'}", f"--listen-client-urls={etcd_url}",
             f"--advertise-client-urls={etcd_url}", f"--listen-peer-urls={peer_url}",
             f"--initial-advertise-peer-urls={peer_url}", f"--initial-cluster=occam={peer_url}",
             "--initial-cluster-state=new", "--log-level=warn"],
        )  # fmt: skip
        self.wait_for("etcd to answer /health", "etcd", lambda: _etcd_healthy(etcd_url))
        # WatchList=false: Debian's etcd 3.4 cannot answer the progress requests that watch-list needs, and
        # with the gate on the API server turns a client's plain watch from resourceVersion 0 into a
        # watch-list that then fails; kwok's informers would only see changes on their back-off relists.
        # The requestheader flags only silence the controllers' complaints about a missing front-proxy CA.
        admission_config = self.dir / "admission.json"
        admission_config.write_text(json.dumps(ADMISSION_CONFIG, indent=1))
        self.spawn(
            "kube-apiserver",
            [str(b / "kube-apiserver"), f"--etcd-servers={etcd_url}", "--bind-address=127.0.0.1",
             "--advertise-address=127.0.0.1", f"--secure-port={ports['apiserver']}",
             f"--tls-cert-file={serving.cert}", f"--tls-private-key-file={serving.key}",
             f"--client-ca-file={pki.ca.cert}", "--authorization-mode=Node,RBAC",
             f"--kubelet-client-certificate={kubelet_client.cert}", f"--kubelet-client-key={kubelet_client.key}",
             "--kubelet-preferred-address-types=InternalIP",
             f"--enable-admission-plugins={','.join(ADMISSION_PLUGINS)}", "--allow-privileged=true",
             f"--admission-control-config-file={admission_config}",
             f"--service-account-issuer={ISSUER}", f"--service-account-key-file={sa.cert}",
             f"--service-account-signing-key-file={sa.key}", f"--service-cluster-ip-range={SERVICE_CIDR}",
             "--endpoint-reconciler-type=none", "--feature-gates=WatchList=false", "--profiling=false",
             f"--requestheader-client-ca-file={pki.ca.cert}", "--requestheader-allowed-names=front-proxy-client",
             "--requestheader-username-headers=X-Remote-User", "--requestheader-group-headers=X-Remote-Group",
             "--requestheader-extra-headers-prefix=X-Remote-Extra-", f"--cert-dir={self.dir / 'apiserver-certs'}"],
        )  # fmt: skip
        admin_tls = ssl.create_default_context(cafile=str(pki.ca.cert))
        admin_pair = pki_dir / "admin"
        admin_tls.load_cert_chain(f"{admin_pair}.crt", f"{admin_pair}.key")
        self.wait_for(
            "kube-apiserver to be ready (/readyz)",
            "kube-apiserver",
            lambda: _http_ok(f"{self.server}/readyz", admin_tls),
        )
        common = ["--bind-address=127.0.0.1", "--leader-elect=false", "--profiling=false"]
        self.spawn(
            "kube-controller-manager",
            [str(b / "kube-controller-manager"), f"--kubeconfig={kubeconfigs['kcm']}",
             f"--authentication-kubeconfig={kubeconfigs['kcm']}", f"--authorization-kubeconfig={kubeconfigs['kcm']}",
             f"--secure-port={ports['kcm']}", "--use-service-account-credentials=true",
             f"--service-account-private-key-file={sa.key}", f"--root-ca-file={pki.ca.cert}",
             f"--cluster-signing-cert-file={pki.ca.cert}", f"--cluster-signing-key-file={pki.ca.key}",
             f"--service-cluster-ip-range={SERVICE_CIDR}", f"--cert-dir={self.dir / 'kcm-certs'}", *common],
        )  # fmt: skip
        self.spawn(
            "kube-scheduler",
            [str(b / "kube-scheduler"), f"--kubeconfig={kubeconfigs['scheduler']}",
             f"--authentication-kubeconfig={kubeconfigs['scheduler']}",
             f"--authorization-kubeconfig={kubeconfigs['scheduler']}", f"--secure-port={ports['scheduler']}",
             f"--cert-dir={self.dir / 'scheduler-certs'}", *common],
        )  # fmt: skip
        self.spawn(
            "kwok",
            [str(b / "kwok"), f"--kubeconfig={self.kubeconfig}", f"--config={kwok_stages.write_config(self.dir / 'kwok.yaml')}",
             "--manage-all-nodes=false", "--manage-nodes-with-annotation-selector=" + "=".join(kwok_stages.MANAGED_ANNOTATION),
             f"--cidr={POD_CIDR}", f"--node-ip={NODE_IP}", "--node-lease-duration-seconds=40",
             f"--server-address=127.0.0.1:{ports['kwok']}"],
        )  # fmt: skip
        insecure = ssl.create_default_context()  # the components serve self-signed certificates
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE
        for name in ("kube-controller-manager", "kube-scheduler"):
            port = ports["kcm" if name == "kube-controller-manager" else "scheduler"]
            url = f"https://127.0.0.1:{port}/healthz"
            self.wait_for(f"{name} to be healthy ({url})", name, lambda u=url: _http_ok(u, insecure))
        kwok_url = f"http://127.0.0.1:{ports['kwok']}/healthz"
        self.wait_for(f"kwok to be healthy ({kwok_url})", "kwok", lambda: _http_ok(kwok_url))
        self._add_nodes()

    def _add_nodes(self) -> None:
        from kubernetes import client, config

        api_client = config.new_client_from_config(str(self.kubeconfig))
        core = client.CoreV1Api(api_client)
        try:
            for node in self.nodes:
                core.create_node(node)
            names = {n["metadata"]["name"] for n in self.nodes}
            self.wait_for(
                f"kwok to make the nodes {sorted(names)} Ready and the node lifecycle controller to untaint them",
                "kwok",
                lambda: True if names <= kwok_stages.schedulable_nodes(core) else None,
            )
            self.wait_for(
                "the service account controller to make 'default' in namespace default",
                "kube-controller-manager",
                lambda: core.read_namespaced_service_account("default", "default"),
            )
        finally:
            api_client.close()


def _http_ok(url: str, context: ssl.SSLContext | None = None) -> bool | None:
    with urllib.request.urlopen(url, context=context, timeout=5) as response:
        return True if response.status == 200 else None


def _etcd_healthy(url: str) -> bool | None:
    with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
        return True if json.loads(response.read()).get("health") == "true" else None
