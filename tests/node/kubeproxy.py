"""Service routing for the real node: the real kube-proxy (iptables mode) on this machine.

Z2JH's hub and proxy reach each other, and a notebook pod its hub, through ClusterIP Services, which
need kube-proxy. :class:`ServiceProxy` runs ``kube-proxy`` of the control plane's release (built by
scripts/k8s-binaries.sh) as a host process, as its DaemonSet would run it in the host's network namespace,
in iptables mode with the control plane's service range, with a service account of its own bound to
the rules of the built-in ClusterRole ``system:node-proxier``. It writes the ``KUBE-*`` chains: a
connection to a Service's cluster IP and port is DNAT'ed to one of its ready endpoints (pods of the node's
bridge); from outside the node's pod subnet (this machine itself) it is also masqueraded, so the pod's
answer comes back through the host. Pods reach the service range through the gateway (the node's CNI
config routes :data:`~tests.kubernetes.controlplane.SERVICE_CIDR` there), where the host's PREROUTING
hook DNATs it; the answer, bridged from pod to pod, is un-DNAT'ed by conntrack (br_netfilter). NetworkPolicies
see the DNAT'ed packet (kube-network-policies' hook is POSTROUTING): the policies of the endpoint's pod apply.

The ``kubernetes`` Service stays with :mod:`.clusterservices`: the API server listens on loopback, an
endpoint no DNAT from a pod can reach without ``route_localnet``, and the control plane runs with
``--endpoint-reconciler-type=none``, so the Service has no endpoints (kube-proxy would REJECT the host's
own connections to it). While the proxy runs, the Service carries the label
``service.kubernetes.io/service-proxy-name`` (:data:`SKIP_LABEL`), with which kube-proxy leaves a Service
to another proxy, here the forwarder on its cluster IP (an address of the bridge).

It leaves this machine's kernel settings alone (no conntrack table sizes, no ``route_localnet``: node
ports on loopback off) and serves node ports on the gateway only. :meth:`ServiceProxy.stop` kills it and
runs ``kube-proxy --cleanup``, which removes every chain it made.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from tests.kubernetes.controlplane import SERVICE_CIDR, ControlPlane, free_port
from tests.kubernetes.pki import write_kubeconfig
from tests.kubernetes.processes import Harness

from .agentaccount import create_agent_account, delete_agent_account
from .nodeconfig import GATEWAY, SUBNET

BINARY = "kube-proxy"
ACCOUNT = "occam-test-kube-proxy"
#: kube-proxy handles only Services without this label (what it is for: a Service served by another proxy).
SKIP_LABEL = ("service.kubernetes.io/service-proxy-name", "occam-test-clusterservices")


class ServiceProxyError(RuntimeError):
    pass


def missing_service_proxy(bin_dir: Path) -> str | None:
    """Why kube-proxy cannot run here (with the fix); None if it can."""
    if not os.access(bin_dir / BINARY, os.X_OK):
        return f"{bin_dir / BINARY}: `bash scripts/k8s-binaries.sh` builds it"
    for tool in ("iptables", "iptables-restore", "iptables-save"):
        if not shutil.which(tool):
            return f"{tool}: `apt-get install iptables`"
    return None


def proxy_config(kubeconfig: Path, node_name: str, healthz_port: int, metrics_port: int) -> dict[str, Any]:
    """kube-proxy's KubeProxyConfiguration for the real node (pure: a dict out)."""
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": node_name,
        "mode": "iptables",
        # Traffic to a Service from outside the node's pod subnet (this machine) is masqueraded.
        "clusterCIDR": SUBNET,
        "detectLocalMode": "ClusterCIDR",
        "healthzBindAddress": f"127.0.0.1:{healthz_port}",
        "metricsBindAddress": f"127.0.0.1:{metrics_port}",
        "nodePortAddresses": [f"{GATEWAY}/32"],
        # Zero: leave the machine's conntrack table size and timeouts as they are.
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
            "udpTimeout": "0s",
            "udpStreamTimeout": "0s",
        },
        # Node ports on 127.0.0.1 would need route_localnet=1 for the whole machine.
        "iptables": {"localhostNodePorts": False, "syncPeriod": "30s", "minSyncPeriod": "0s"},
    }


def kube_chains() -> str:
    """The ``KUBE-SERVICES`` chain of the nat table ('' when kube-proxy's rules are not there)."""
    result = subprocess.run(
        ["iptables", "-w", "5", "-t", "nat", "-S", "KUBE-SERVICES"], capture_output=True, text=True, check=False
    )
    return result.stdout if result.returncode == 0 else ""


class ServiceProxy(Harness):
    """``with ServiceProxy(control_plane, admin, node_name):`` ClusterIP Services route to their pods on the node."""

    error = ServiceProxyError

    def __init__(self, control_plane: ControlPlane, admin: Any, node_name: str, *, timeout: float = 60.0) -> None:
        super().__init__(timeout)
        self.control_plane = control_plane
        self.admin = admin
        self.node_name = node_name
        self.service_cidr = SERVICE_CIDR
        self._labelled = False

    def start(self) -> None:
        from kubernetes import client

        if kube_chains():
            raise ServiceProxyError(
                "this machine's nat table has a KUBE-SERVICES chain: another kube-proxy runs here, or one was "
                f"killed; if none runs, remove its rules: `{self.control_plane.bin_dir / BINARY} --cleanup`"
            )
        self.dir = Path(tempfile.mkdtemp(prefix="occam-kube-proxy-"))
        rbac = client.RbacAuthorizationV1Api(self.admin)
        rules = [rule.to_dict() for rule in rbac.read_cluster_role("system:node-proxier").rules]
        rules = [{_camel(k): v for k, v in rule.items() if v is not None} for rule in rules]
        token = create_agent_account(self.admin, ACCOUNT, rules)
        self._label_api_service(SKIP_LABEL[1])
        ca = self.admin.configuration.ssl_ca_cert
        ca_pem = Path(ca).read_bytes() if ca else None
        kubeconfig = write_kubeconfig(
            self.dir / "kube-proxy.kubeconfig", self.control_plane.server, ca_pem, {"token": token}
        )
        os.chmod(kubeconfig, 0o600)
        config = self.dir / "kube-proxy.json"  # JSON is YAML
        config.write_text(json.dumps(proxy_config(kubeconfig, self.node_name, free_port(), free_port())))
        args = [str(self.control_plane.bin_dir / BINARY), f"--config={config}", "--v=2"]
        self.spawn(BINARY, args, {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")})
        self.wait_for("kube-proxy's first sync of the nat table", BINARY, kube_chains)

    def _label_api_service(self, value: str | None) -> None:
        from kubernetes import client

        core = client.CoreV1Api(self.admin)
        core.patch_namespaced_service("kubernetes", "default", {"metadata": {"labels": {SKIP_LABEL[0]: value}}})
        self._labelled = value is not None

    def stop(self) -> None:
        from kubernetes import client

        self.kill_all(grace=10)
        if self.dir is not None:
            subprocess.run(
                [str(self.control_plane.bin_dir / BINARY), "--cleanup", "--v=0"],
                capture_output=True,
                check=False,
                timeout=60,
            )
        if self._labelled:
            with contextlib.suppress(client.ApiException):
                self._label_api_service(None)
        delete_agent_account(self.admin, ACCOUNT)
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None


def _camel(name: str) -> str:
    """``api_groups`` -> ``apiGroups`` (the Python client's attribute names back to the API's)."""
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)
