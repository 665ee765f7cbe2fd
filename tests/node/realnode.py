"""One real node for the test control plane: containerd, a CNI bridge and a kubelet, all on this machine.

``with RealNode(control_plane, images) as node:`` starts them and returns once the node is Ready:

* containerd with its own state and socket in a temporary directory and its own root (images) cached
  between sessions, its CRI looking for the sandbox image :data:`~.images.PAUSE_REF`, which is
  imported with the other images built here (see :mod:`.images`);
* CNI: the ``bridge`` plugin of Debian's containernetworking-plugins with host-local IPAM on
  :data:`SUBNET`; the bridge holds the gateway address :data:`GATEWAY`, which is also the node's IP and
  the address pods reach the host (the Spark driver) at. No default route, no masquerade: a pod reaches
  other pods and this machine's own addresses, nothing else (see :func:`.nodeconfig.cni_config`; a route
  to the metadata address leads nowhere but to the network-policy tests' stand-in, :mod:`.netpolicy`; one
  to the Services' range leads to Services' pods where kube-proxy runs, :mod:`.kubeproxy`);
* on the gateway, cluster DNS and the ``kubernetes`` Service (:mod:`.clusterservices`), which a batch
  job's driver pod needs;
* a kubelet of the control plane's release, its client certificate (``system:node:<name>``) and
  serving certificate signed by the control plane's CA, pods under the cgroup :attr:`cgroup_root`
  (cgroupfs driver), registered with the taint :data:`TAINT` so that other tiers' pods never land here
  (see :meth:`RealNode.exclusive`).

:meth:`RealNode.stop` undoes everything: it deletes the pods bound to the node, kills what is left of
containers, kubelet and containerd, and removes the sandboxes' network namespaces, mounts, the cgroups,
the bridge and the directory. Each process is in its own process group and dies with the test process.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, TypeVar

from tests.kubernetes.controlplane import SERVICE_CIDR, ControlPlane, free_port
from tests.kubernetes.pki import write_kubeconfig
from tests.kubernetes.processes import Harness

from .clusterservices import ClusterServices
from .images import Image, cache_dir
from .nodeconfig import (
    API_SERVICE_IP,
    BRIDGE,
    CLUSTER_DOMAIN,
    CNI_DIR,
    GATEWAY,
    LABEL,
    METADATA_ADDRESS,
    NODE_NAME,
    SUBNET,
    TAINT,
    cni_config,
    containerd_config,
    kubelet_config,
)
from .pki import load_pki

T = TypeVar("T")

NETNS_DIR = Path("/run/netns")
CGROUP_FS = Path("/sys/fs/cgroup")
REQUIRED_TOOLS = ("containerd", "containerd-shim-runc-v2", "runc", "ctr", "ip", "mount", "umount")


class NodeError(RuntimeError):
    pass


def missing_capabilities(kubelet: Path) -> list[str]:
    """What this machine lacks to run a real node (empty: it can); each with the fix."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root (containerd, runc and the kubelet manage namespaces, mounts and cgroups)")
    tools = [t for t in REQUIRED_TOOLS if not shutil.which(t)]
    if tools or not (CNI_DIR / "bridge").exists():
        missing.append(
            f"{', '.join(tools + ([] if (CNI_DIR / 'bridge').exists() else ['CNI plugins']))}: "
            "`apt-get install containerd runc containernetworking-plugins iptables` (or `make node-images`)"
        )
    if not os.access(kubelet, os.X_OK):
        missing.append(f"{kubelet}: `bash scripts/k8s-binaries.sh` builds it with the control plane")
    if not (CGROUP_FS / "memory").is_dir() and not (CGROUP_FS / "cgroup.controllers").exists():
        missing.append("a cgroup filesystem at /sys/fs/cgroup")
    return missing


class RealNode(Harness):
    """``with RealNode(control_plane, images) as node:`` a containerd + kubelet node joined to ``control_plane``."""

    error = NodeError
    poll_seconds = 0.5

    def __init__(
        self, control_plane: ControlPlane, images: dict[str, Image], *, timeout: float = 180.0, fresh_root: bool = False
    ) -> None:
        """``fresh_root``: import the images into a new containerd root instead of the cached one."""
        assert control_plane.dir is not None
        self.control_plane = control_plane
        self.images = images
        super().__init__(timeout)
        self.name = NODE_NAME
        self.cgroup_root = f"/occam-node-{os.getpid()}"
        self.socket = Path()
        self._netns_before: set[str] = set()
        self.import_seconds = 0.0
        self.fresh_root = fresh_root
        self.host_addresses: list[str] = []
        self.pod_routes: list[str] = []  # addresses pods reach through the gateway
        self._root_lock: IO[str] | None = None
        self.services: ClusterServices | None = None

    def ctr(self, *args: str, timeout: float = 60) -> str:
        """Run ``ctr`` against this node's containerd (namespace ``k8s.io``); its output."""
        result = subprocess.run(
            ["ctr", "--address", str(self.socket), "-n", "k8s.io", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise NodeError(f"`ctr {' '.join(args)}` failed: {result.stderr.strip()}")
        return result.stdout

    # -- start-up ------------------------------------------------------------------------------------

    def start(self) -> None:
        _remove_stale(Path(tempfile.gettempdir()))
        self.dir = Path(tempfile.mkdtemp(prefix="occam-node-"))
        (self.dir / "owner.pid").write_text(str(os.getpid()))
        (self.dir / "cgroup").write_text(self.cgroup_root)
        self._netns_before = _netns()
        self._make_bridge()
        self.services = ClusterServices(
            self._core(), GATEWAY, [GATEWAY, API_SERVICE_IP], self.control_plane.server, CLUSTER_DOMAIN
        ).__enter__()
        self._start_containerd()
        started = time.monotonic()
        present = self._image_digests()
        for image in self.images.values():
            if present.get(image.ref) != image.digest:  # new, or rebuilt under the same name
                self.ctr("images", "import", str(image.archive), timeout=900)
        stale = {r for r in present if not r.startswith("sha256:")} - {i.ref for i in self.images.values()}
        if stale:
            self.ctr("images", "rm", *sorted(stale))  # containerd's GC then frees their content
        self.import_seconds = time.monotonic() - started
        self._make_cgroups()
        self._start_kubelet()

    def _image_digests(self) -> dict[str, str]:
        """``ref -> manifest digest`` of the images containerd holds."""
        rows = [line.split() for line in self.ctr("images", "ls").splitlines()[1:]]
        return {row[0]: row[2] for row in rows if len(row) > 2}

    def _make_bridge(self) -> None:
        # The bridge plugin would create it with the first pod; the kubelet needs the node IP beforehand.
        if Path("/sys/class/net", BRIDGE).exists():
            raise NodeError(
                f"the bridge {BRIDGE} exists: another real node (a node-tier test session or bench/bench_node.py) "
                f"is running on this machine; one at a time. If none is, remove it: `ip link del {BRIDGE}`"
            )
        _ip("link", "add", BRIDGE, "type", "bridge")
        _ip("addr", "add", f"{GATEWAY}/{SUBNET.split('/')[1]}", "dev", BRIDGE)
        # In-cluster clients (the Python client in a notebook pod) use the Service's IP from the pod's
        # environment; on this machine it is an address of the bridge, served by .clusterservices.
        _ip("addr", "add", f"{API_SERVICE_IP}/32", "dev", BRIDGE)
        _ip("link", "set", BRIDGE, "up")

    def _start_containerd(self) -> None:
        assert self.dir is not None
        net_d = self.dir / "cni" / "net.d"
        net_d.mkdir(parents=True)
        self.host_addresses = [*host_addresses(), API_SERVICE_IP]
        # The Services' range too: where kube-proxy runs (.kubeproxy), the host DNATs it to the Service's pods.
        self.pod_routes = [*self.host_addresses, METADATA_ADDRESS, SERVICE_CIDR]
        conflist = cni_config(self.dir / "cni" / "ipam", self.pod_routes)
        (net_d / "10-occam.conflist").write_text(json.dumps(conflist))
        self.socket = self.dir / "containerd.sock"
        config = self.dir / "containerd.toml"
        config.write_text(containerd_config(self.dir, self.socket, net_d, self._containerd_root()))
        self.spawn("containerd", ["containerd", "--config", str(config)])
        self.wait_for("containerd to answer on its socket", "containerd", lambda: self.ctr("version") or None)
        self._remove_containers()  # a session killed with SIGKILL may have left some in the cached root

    def _containerd_root(self) -> Path:
        """The cached root (images imported and unpacked by an earlier session), or a fresh one if it is in use.

        The images are gigabytes: importing them takes minutes, so the root survives between sessions,
        one session at a time (a lock); pods and containers never outlive :meth:`stop`.
        """
        assert self.dir is not None
        if self.fresh_root:
            return self.dir / "containerd-root"
        cache = cache_dir() / "containerd"
        cache.mkdir(parents=True, exist_ok=True)
        lock = open(cache / "lock", "w")  # noqa: SIM115 - held until stop()
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            return self.dir / "containerd-root"
        self._root_lock = lock
        return cache / "root"

    def _make_cgroups(self) -> None:
        # The kubelet refuses a cgroup root that does not exist in every hierarchy.
        for hierarchy in _cgroup_hierarchies():
            path = hierarchy / self.cgroup_root.lstrip("/")
            path.mkdir(exist_ok=True)
            # A new v1 cpuset starts with no CPUs and no memory nodes, and no process may join it.
            for name in ("cpuset.cpus", "cpuset.mems"):
                if (path / name).exists() and not (path / name).read_text().strip():
                    (path / name).write_text((hierarchy / name).read_text())

    def _start_kubelet(self) -> None:
        assert self.dir is not None and self.control_plane.dir is not None
        pki = load_pki(self.control_plane.dir / "pki", self.dir / "pki")
        client = pki.issue("kubelet-client", common_name=f"system:node:{self.name}", organizations=("system:nodes",))
        serving = pki.issue(
            "kubelet-serving", common_name=self.name, dns_names=(self.name,), ip_addresses=(GATEWAY,), server=True
        )
        kubeconfig = write_kubeconfig(
            self.dir / "kubelet.kubeconfig",
            self.control_plane.server,
            pki.ca_pem,
            {"client-certificate": str(client.cert), "client-key": str(client.key)},
        )
        healthz = free_port()
        config = kubelet_config(
            ca_file=str(pki.ca.cert),
            serving=(str(serving.cert), str(serving.key)),
            runtime_socket=str(self.socket),
            cgroup_root=self.cgroup_root,
            pod_logs_dir=str(self.dir / "pod-logs"),
            port=free_port(),
            healthz_port=healthz,
        )
        config_file = self.dir / "kubelet.json"
        config_file.write_text(json.dumps(config))
        self.spawn(
            "kubelet",
            [str(self.control_plane.bin_dir / "kubelet"), f"--config={config_file}", f"--kubeconfig={kubeconfig}",
             f"--hostname-override={self.name}", f"--node-ip={GATEWAY}", f"--root-dir={self.dir / 'kubelet'}",
             f"--cert-dir={self.dir / 'kubelet-certs'}", f"--node-labels={'='.join(LABEL)}", "--v=2"],
        )  # fmt: skip
        url = f"http://127.0.0.1:{healthz}/healthz"
        self.wait_for(f"the kubelet to be healthy ({url})", "kubelet", lambda: _http_ok(url))
        self.wait_for(f"node {self.name} to be Ready", "kubelet", self._ready)

    def _ready(self) -> bool | None:
        """Ready, and the node lifecycle controller has lifted its not-ready taint."""
        node = self._core().read_node(self.name)
        ready = [c for c in node.status.conditions or [] if c.type == "Ready"]
        taints = {t.key for t in node.spec.taints or []}
        return True if ready and ready[0].status == "True" and "node.kubernetes.io/not-ready" not in taints else None

    def _core(self) -> Any:
        from kubernetes import client, config

        if not hasattr(self, "_api"):
            self._api = config.new_client_from_config(str(self.control_plane.kubeconfig))
        return client.CoreV1Api(self._api)

    # -- sharing the control plane ---------------------------------------------------------------------

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """While inside, new pods can only go to this node: the fake nodes are cordoned, this one untainted.

        The control plane is shared by every tier of a session; outside this block the node keeps its
        taint, so pods of other tests are never scheduled here. Restored on exit.
        """
        core = self._core()
        fake = [n.metadata.name for n in core.list_node().items if n.metadata.name != self.name]
        cordoned = [n for n in fake if not core.read_node(n).spec.unschedulable]
        for name in cordoned:
            core.patch_node(name, {"spec": {"unschedulable": True}})
        core.patch_node(self.name, {"spec": {"taints": None}})
        try:
            yield
        finally:
            core.patch_node(self.name, {"spec": {"taints": [TAINT]}})
            for name in cordoned:
                core.patch_node(name, {"spec": {"unschedulable": False}})

    # -- teardown ------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Remove the node and everything it made. Idempotent; errors are collected and raised at the end."""
        errors: list[str] = []
        if "kubelet" in self._procs and self._procs["kubelet"].poll() is None:
            with contextlib.suppress(Exception):
                self._drain(timeout=60)
        self.kill("kubelet", grace=15)
        _remove_kubelet_iptables()
        if "containerd" in self._procs and self._procs["containerd"].poll() is None:
            try:
                self._remove_containers()
            except Exception as exc:
                errors.append(f"removing containers: {exc}")
        self.kill("containerd", grace=15)
        if self._root_lock is not None:
            self._root_lock.close()
            self._root_lock = None
        for name in sorted(_netns() - self._netns_before):
            if name.startswith("cni-"):
                subprocess.run(["umount", "-l", str(NETNS_DIR / name)], capture_output=True, check=False)
                with contextlib.suppress(OSError):
                    (NETNS_DIR / name).unlink()
        if self.dir is not None:
            _unmount_under(self.dir)
        _remove_cgroup(self.cgroup_root, errors)
        if self.services is not None:
            self.services.close()
            self.services = None
        subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True, check=False)
        if hasattr(self, "_api"):
            with contextlib.suppress(Exception):
                self._core().delete_node(self.name)
            self._api.close()
            del self._api
        if self.dir is not None and os.environ.get("OCCAM_KEEP_NODE") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
        if errors:
            raise NodeError("the real node was not fully removed: " + "; ".join(errors))

    def _drain(self, timeout: float) -> None:
        """Delete the pods bound to this node and wait for the kubelet to stop them (their sandboxes too)."""
        core = self._core()
        selector = f"spec.nodeName={self.name}"
        for pod in core.list_pod_for_all_namespaces(field_selector=selector).items:
            core.delete_namespaced_pod(pod.metadata.name, pod.metadata.namespace, grace_period_seconds=0)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not core.list_pod_for_all_namespaces(field_selector=selector).items and not self._running_tasks():
                return
            time.sleep(0.5)

    def _running_tasks(self) -> list[str]:
        lines = self.ctr("tasks", "ls").splitlines()[1:]
        return [line.split()[0] for line in lines if line.split() and line.split()[-1] == "RUNNING"]

    def _remove_containers(self) -> None:
        for task in self.ctr("tasks", "ls", "-q").split():
            with contextlib.suppress(NodeError):
                self.ctr("tasks", "kill", "-s", "SIGKILL", task)
        deadline = time.monotonic() + 30
        while self._running_tasks() and time.monotonic() < deadline:
            time.sleep(0.3)
        for task in self.ctr("tasks", "ls", "-q").split():
            with contextlib.suppress(NodeError):
                self.ctr("tasks", "delete", "-f", task)
        for container in self.ctr("containers", "ls", "-q").split():
            with contextlib.suppress(NodeError):
                self.ctr("containers", "delete", container)


# -- host helpers ------------------------------------------------------------------------------------------


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise NodeError(f"`ip {' '.join(args)}` failed: {result.stderr.strip()}")


def host_addresses() -> list[str]:
    """This machine's own global IPv4 addresses, outside the pod subnet."""
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"], capture_output=True, text=True)
    found = re.findall(r"^\d+: (\S+)\s+inet (\d+\.\d+\.\d+\.\d+)/", out.stdout, flags=re.MULTILINE)
    return sorted({address for device, address in found if device != BRIDGE})


def _netns() -> set[str]:
    return {p.name for p in NETNS_DIR.iterdir()} if NETNS_DIR.is_dir() else set()


def _http_ok(url: str) -> bool | None:
    with urllib.request.urlopen(url, timeout=5) as response:
        return True if response.status == 200 else None


def _cgroup_hierarchies() -> list[Path]:
    if (CGROUP_FS / "cgroup.controllers").exists():  # cgroup v2: one hierarchy
        return [CGROUP_FS]
    return [p for p in CGROUP_FS.iterdir() if p.is_dir() and not p.is_symlink() and (p / "cgroup.procs").exists()]


def _remove_cgroup(root: str, errors: list[str]) -> None:
    for hierarchy in _cgroup_hierarchies():
        top = hierarchy / root.lstrip("/")
        if not top.exists():
            continue
        for directory in [*sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)), top]:
            for _ in range(20):
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.2)
            else:
                errors.append(f"cgroup {directory} is still busy")


def _remove_kubelet_iptables() -> None:
    """Remove the chains the kubelet adds to this machine's firewall (it has no option not to).

    ``KUBE-FIREWALL`` (jumped to from INPUT and OUTPUT) drops packets to 127.0.0.0/8 from other sources;
    the ``KUBE-KUBELET-CANARY`` and ``KUBE-IPTABLES-HINT`` chains are empty markers.
    """
    for tool in ("iptables", "ip6tables"):
        if not shutil.which(tool):
            continue

        def run(*args: str, tool: str = tool) -> bool:
            return subprocess.run([tool, "-w", "5", *args], capture_output=True, check=False).returncode == 0

        for hook in ("INPUT", "OUTPUT"):
            while run("-t", "filter", "-D", hook, "-j", "KUBE-FIREWALL"):
                pass
        run("-t", "filter", "-F", "KUBE-FIREWALL")
        run("-t", "filter", "-X", "KUBE-FIREWALL")
        for table in ("filter", "nat", "mangle"):
            run("-t", table, "-X", "KUBE-KUBELET-CANARY")
        run("-t", "mangle", "-X", "KUBE-IPTABLES-HINT")


def _unmount_under(directory: Path) -> None:
    """Lazily unmount every mount point below ``directory``, deepest first."""
    prefix = str(directory) + "/"
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point.startswith(prefix):
            points.append(point)
    for point in sorted(set(points), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)


def _remove_stale(base: Path) -> None:
    """What a test process killed with SIGKILL left: its node's bridge, mounts, cgroups and directory."""
    for path in base.glob("occam-node-*"):
        try:
            os.kill(int((path / "owner.pid").read_text()), 0)
            continue
        except ProcessLookupError:
            pass
        except (OSError, ValueError):
            continue
        _unmount_under(path)
        with contextlib.suppress(OSError):
            _remove_cgroup((path / "cgroup").read_text(), [])
        subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True, check=False)
        _remove_kubelet_iptables()
        shutil.rmtree(path, ignore_errors=True)
