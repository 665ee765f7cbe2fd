"""Pure builders of the real node's configuration: the CNI network, containerd's and the kubelet's config.

Dicts and text out, no side effects; :mod:`.realnode` writes them and starts the processes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .images import PAUSE_REF

NODE_NAME = "occam-real-node"
BRIDGE = "occam-br0"
SUBNET = "10.213.0.0/24"  # a private range nothing on this machine uses
GATEWAY = "10.213.0.1"
CLUSTER_DOMAIN = "cluster.local"  # pods' DNS: served on GATEWAY by .clusterservices
API_SERVICE_IP = "10.96.0.1"  # the ``kubernetes`` Service's cluster IP (first of the control plane's range)
#: Clouds' instance metadata service. Pods get a route to it through the gateway, where the host answers
#: nothing (it forwards nothing) unless a network-policy test puts a stand-in behind it (.netpolicy).
METADATA_ADDRESS = "169.254.169.254"
LABEL = ("occam.io/real-node", "true")
TAINT = {"key": "occam.io/real-node", "value": "true", "effect": "NoSchedule"}
CNI_DIR = Path("/usr/lib/cni")


def _cidr(address: str) -> str:
    return address if "/" in address else f"{address}/32"


def cni_config(ipam_dir: Path, host_addresses: list[str]) -> dict[str, Any]:
    """The pod network: one bridge, addresses from :data:`SUBNET`, no default route, no masquerade.

    Besides their subnet, pods get a route to each of this machine's own addresses (``host_addresses``,
    addresses or CIDRs), through the gateway: the host delivers those packets locally, or (the Services'
    range, where kube-proxy runs: :mod:`.kubeproxy`) DNATs them to a pod of the bridge. A
    driver on this machine may advertise any of them: Horovod's launcher hands its tasks the driver's
    address on the interface name the tasks share (``eth0``), which here is this machine's ``eth0``.
    """
    return {
        "cniVersion": "1.0.0",
        "name": "occam-node",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "isDefaultGateway": False,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": SUBNET, "gateway": GATEWAY}]],
                    "routes": [{"dst": _cidr(address)} for address in host_addresses],
                    "dataDir": str(ipam_dir),
                },
            }
        ],
    }


def containerd_config(directory: Path, socket: Path, cni_conf_dir: Path, root: Path) -> str:
    """containerd 1.6's config (TOML, version 2): images under ``root``, the rest under ``directory``."""
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""version = 2
root = "{root}"
state = "{directory / 'containerd-state'}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "{socket}"

[{cri}]
  sandbox_image = "{PAUSE_REF}"
  enable_selinux = false
  # The kubelet asks for oom_score_adj -998 for sandboxes; lowering it needs CAP_SYS_RESOURCE, which
  # this machine's root may lack ("failed to update /proc/self/oom_score_adj: Permission denied").
  restrict_oom_score_adj = true
  max_container_log_line_size = 16384

[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false

[{cri}.cni]
  bin_dir = "{CNI_DIR}"
  conf_dir = "{cni_conf_dir}"
  max_conf_num = 1

[plugins."io.containerd.internal.v1.opt"]
  path = "{directory / 'containerd-opt'}"
"""


def kubelet_config(
    *,
    ca_file: str,
    serving: tuple[str, str],
    runtime_socket: str,
    cgroup_root: str,
    pod_logs_dir: str,
    port: int,
    healthz_port: int,
) -> dict[str, Any]:
    """The kubelet's KubeletConfiguration: authenticated API only, cgroupfs, our runtime, evictions relaxed.

    Image garbage collection is off (the images were built here and cannot be pulled again); eviction
    thresholds are low because the disk and memory are shared with the rest of the machine.
    """
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": GATEWAY,
        "port": port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": ca_file},
        },
        "authorization": {"mode": "Webhook"},
        "tlsCertFile": serving[0],
        "tlsPrivateKeyFile": serving[1],
        "containerRuntimeEndpoint": f"unix://{runtime_socket}",
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": cgroup_root,
        "failSwapOn": False,
        "resolvConf": "",
        "clusterDNS": [GATEWAY],
        "clusterDomain": CLUSTER_DOMAIN,
        "registerWithTaints": [TAINT],
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "maxPods": 20,
        "podLogsDir": pod_logs_dir,
        "nodeStatusUpdateFrequency": "5s",
        "syncFrequency": "10s",
        "shutdownGracePeriod": "0s",
        "protectKernelDefaults": False,
    }
