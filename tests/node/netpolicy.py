"""NetworkPolicy enforcement for the real node: kube-network-policies on this machine, and a metadata stand-in.

The node's bridge CNI enforces no NetworkPolicy. :class:`PolicyEnforcer` runs kube-network-policies
(sigs.k8s.io/kube-network-policies, built by scripts/k8s-binaries.sh with one patch for kernels without
nftables' queue expression) as a host process, as its DaemonSet would run it in the host's network
namespace: it watches pods, namespaces and NetworkPolicies through the API server with a service account
of its own (its upstream ClusterRole), puts an nftables table ``inet kube-network-policies`` in the
POSTROUTING hook, and gives the first packet of each connection from or to a pod of this node a verdict
in user space (NFQUEUE). The packets it sees are those between pods (bridged, which the kernel's
br_netfilter hands to the IPv4 hooks) and those the host routes on; a pod's packets to this machine's
own addresses (the cluster services on the gateway, the hub of tests/node/test_hub_on_node.py) are
delivered locally and never reach POSTROUTING, and the host's own root traffic is accepted by its rules.

kube-network-policies reads its credentials as in a pod (``rest.InClusterConfig``: the
``KUBERNETES_SERVICE_*`` environment, a token and CA file under /var/run/secrets). It runs in a mount
namespace of its own (``unshare``) where a small tmpfs over /run holds them, so the host's /run is
untouched; its network namespace is the host's, as the DaemonSet's ``hostNetwork`` would have it.

:class:`MetadataStandIn` answers on the metadata address (169.254.169.254, port 80) from a network
namespace of its own behind a veth pair; for the duration, the host forwards between the node's bridge
and that veth (per-interface forwarding, nothing else), so a pod's connection there is routed through
POSTROUTING like a connection to a cloud's metadata service. Without enforcement a pod reaches it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.kubernetes.controlplane import ControlPlane, free_port
from tests.kubernetes.processes import Harness

from .agentaccount import create_agent_account, delete_agent_account
from .nodeconfig import BRIDGE, METADATA_ADDRESS, SUBNET

BINARY = "kube-network-policies"
TABLE = ("inet", "kube-network-policies")
ACCOUNT = "occam-test-kube-network-policies"
#: kube-network-policies' own ClusterRole (its install.yaml).
RULES = [
    {"apiGroups": [""], "resources": ["pods", "namespaces"], "verbs": ["list", "watch"]},
    {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"], "verbs": ["list", "watch"]},
]
_IN_POD = (
    "mount -t tmpfs -o size=1m,mode=0755 occam-knp /run && d=/run/secrets/kubernetes.io/serviceaccount && "
    'mkdir -p "$d" && cp "$0/token" "$0/ca.crt" "$d/" && exec "$@"'
)


class PolicyError(RuntimeError):
    pass


def missing_enforcer(bin_dir: Path) -> str | None:
    """Why kube-network-policies cannot run here (with the fix); None if it can."""
    if not os.access(bin_dir / BINARY, os.X_OK):
        return f"{bin_dir / BINARY}: `bash scripts/k8s-binaries.sh` builds it"
    for tool in ("unshare", "nft"):
        if not shutil.which(tool):
            return f"{tool}: `apt-get install {'util-linux' if tool == 'unshare' else 'nftables'}`"
    return None


def nft_table() -> str | None:
    """kube-network-policies' ruleset, or None when it has none."""
    result = subprocess.run(["nft", "list", "table", *TABLE], capture_output=True, text=True, check=False)
    return result.stdout if result.returncode == 0 else None


class PolicyEnforcer(Harness):
    """``with PolicyEnforcer(control_plane, admin, node_name):`` kube-network-policies enforces policies on the node."""

    error = PolicyError

    def __init__(self, control_plane: ControlPlane, admin: Any, node_name: str, *, timeout: float = 60.0) -> None:
        super().__init__(timeout)
        self.control_plane = control_plane
        self.admin = admin
        self.node_name = node_name

    def start(self) -> None:
        if nft_table() is not None:
            raise PolicyError(
                "the nftables table inet kube-network-policies exists: another enforcer runs on this machine, or one "
                "was killed; if none runs, remove it: `nft delete table inet kube-network-policies`"
            )
        self.dir = Path(tempfile.mkdtemp(prefix="occam-knp-"))
        token = create_agent_account(self.admin, ACCOUNT, RULES)
        secrets = self.dir / "serviceaccount"
        secrets.mkdir(mode=0o700)
        (secrets / "token").write_text(token)
        ca = self.admin.configuration.ssl_ca_cert
        if not ca:
            raise PolicyError("the admin's kubeconfig names no CA file; kube-network-policies needs the cluster's CA")
        (secrets / "ca.crt").write_bytes(Path(ca).read_bytes())
        server = urlsplit(self.control_plane.server)
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "KUBERNETES_SERVICE_HOST": server.hostname or "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": str(server.port or 443),
        }
        args = [
            str(self.control_plane.bin_dir / BINARY),
            f"--hostname-override={self.node_name}",
            "--disable-nri",  # the node's containerd runs without NRI; pod IPs come from the API server
            f"--metrics-bind-address=127.0.0.1:{free_port()}",
            "--v=2",
        ]
        self.spawn(
            BINARY, ["unshare", "--mount", "--propagation", "private", "sh", "-c", _IN_POD, str(secrets), *args], env
        )
        self.wait_for("kube-network-policies' nftables table", BINARY, nft_table)

    def stop(self) -> None:
        # It removes its table on SIGINT only (after 5 s); SIGTERM is quicker, and the table goes here.
        self.kill_all(grace=10)
        subprocess.run(["nft", "delete", "table", *TABLE], capture_output=True, check=False)
        delete_agent_account(self.admin, ACCOUNT)
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None


class MetadataStandIn(Harness):
    """``with MetadataStandIn():`` something answers ``ok`` on 169.254.169.254:80, routed from the node's bridge."""

    HOST_SIDE = "occam-meta0"
    HOST_ADDRESS = "169.254.169.1"
    PORT = 80

    def __init__(self, *, timeout: float = 30.0) -> None:
        super().__init__(timeout)
        self.netns = f"occam-meta-{os.getpid()}"
        self._forwarding: dict[str, str] = {}

    def start(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="occam-meta-"))
        inside = "occam-meta1"
        _run("ip", "netns", "add", self.netns)
        _run("ip", "link", "add", self.HOST_SIDE, "type", "veth", "peer", "name", inside)
        _run("ip", "link", "set", inside, "netns", self.netns)
        _run("ip", "addr", "add", f"{self.HOST_ADDRESS}/24", "dev", self.HOST_SIDE)
        _run("ip", "link", "set", self.HOST_SIDE, "up")
        in_ns = ("ip", "netns", "exec", self.netns)
        _run(*in_ns, "ip", "addr", "add", f"{METADATA_ADDRESS}/24", "dev", inside)
        _run(*in_ns, "ip", "link", "set", inside, "up")
        _run(*in_ns, "ip", "link", "set", "lo", "up")
        _run(*in_ns, "ip", "route", "add", SUBNET, "via", self.HOST_ADDRESS)
        # Forward between the bridge and the veth only: a device's own flag decides for packets it receives.
        for device in (BRIDGE, self.HOST_SIDE):
            path = Path(f"/proc/sys/net/ipv4/conf/{device}/forwarding")
            self._forwarding[device] = path.read_text().strip()
            path.write_text("1")
        server = (
            "import socketserver\n"
            "class H(socketserver.BaseRequestHandler):\n"
            "    def handle(self): self.request.sendall(b'ok')\n"
            f"socketserver.ThreadingTCPServer(({METADATA_ADDRESS!r}, {self.PORT}), H).serve_forever()\n"
        )
        self.spawn("metadata", [*in_ns, "python3", "-c", server])
        self.wait_for(
            "the metadata stand-in to listen",
            "metadata",
            lambda: f"{METADATA_ADDRESS}:{self.PORT}" in _run(*in_ns, "ss", "-ltn"),
        )

    def stop(self) -> None:
        self.kill_all(grace=5)
        for device, value in self._forwarding.items():
            with contextlib.suppress(OSError):
                Path(f"/proc/sys/net/ipv4/conf/{device}/forwarding").write_text(value)
        self._forwarding = {}
        subprocess.run(["ip", "link", "del", self.HOST_SIDE], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", self.netns], capture_output=True, check=False)
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None


def _run(*args: str) -> str:
    result = subprocess.run(list(args), capture_output=True, text=True, check=False, timeout=30)
    if result.returncode != 0:
        raise PolicyError(f"`{' '.join(args)}` failed: {result.stderr.strip()}")
    return result.stdout
