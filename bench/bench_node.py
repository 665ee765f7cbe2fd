"""start_cluster(n=2) on the real node (executors in containers) against the embedded cluster, in one run.

    .venv/bin/python bench/bench_node.py [--repeats 2] [--network-policies] [--out bench/results/node.json]

Needs what the node test tier needs (root, containerd, runc, CNI plugins, the kubelet from
scripts/k8s-binaries.sh; the notebook image of `make images`, the small ones built here). What is timed is
``start_cluster(n=2)`` inside a driver process, from the call until both executors have registered:
on the real node that is Spark creating two pods, the kubelet starting their containers from the
notebook image and the executor JVMs connecting back; embedded it is Spark's local-cluster mode
starting two executor JVMs on this machine. Also reported: building the images (cached: seconds),
importing them into containerd, and the node joining the control plane. ``--network-policies``: each
namespace gets the spawner's NetworkPolicies, enforced by kube-network-policies (tests/node/netpolicy.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from report import format_table, write_results  # noqa: E402

from spawner.network_policy import NOTEBOOK_SELECTOR, NetworkAccess, network_policies  # noqa: E402
from tests.kubernetes.controlplane import ControlPlane  # noqa: E402
from tests.kubernetes.fixtures import find_binaries  # noqa: E402
from tests.kubernetes.student import create_student_namespace, wait_running  # noqa: E402
from tests.node.driverproc import NodeDriver  # noqa: E402
from tests.node.images import build_all  # noqa: E402
from tests.node.netpolicy import PolicyEnforcer  # noqa: E402
from tests.node.nodeconfig import API_SERVICE_IP  # noqa: E402
from tests.node.realnode import RealNode  # noqa: E402

EMBEDDED = """
import json, time
from occam import start_cluster
began = time.monotonic()
cluster = start_cluster(backend="embedded", n=2, progress=False)
seconds = time.monotonic() - began
print(json.dumps({"executors": cluster.executor_count(), "seconds": seconds}), flush=True)
cluster.stop()
"""


def embedded_start() -> float:
    out = subprocess.run([sys.executable, "-c", EMBEDDED], capture_output=True, text=True, timeout=600, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["executors"] == 2, result
    return float(result["seconds"])


def node_start(node: RealNode, admin: Any, index: int, workdir: Path, *, policies: bool = False) -> float:
    from kubernetes import client

    core: Any = client.CoreV1Api(admin)
    # The node tier's namespaces keep the cluster's default Pod Security level: the driver's hostPath
    # stand-in for the shared work volume (tests/node/driverproc.py) is refused by restricted.
    ns = create_student_namespace(admin, f"bench-node-{index}", workdir, restricted=False)
    if policies:
        # The student namespace's NetworkPolicies, as the spawner makes them (spawner.network_policy).
        access = NetworkAccess(
            hub_namespace="occam-hub", hub_selector={"app": "jupyterhub"}, api_server_cidrs=[f"{API_SERVICE_IP}/32"]
        )
        networking = client.NetworkingV1Api(admin)
        for policy in network_policies(ns.name, {}, access):
            networking.create_namespaced_network_policy(ns.name, policy)
    try:
        notebook_pod: dict[str, Any] = {
            "metadata": {"name": "jupyter-bench", "labels": dict(NOTEBOOK_SELECTOR)},
            "spec": {"containers": [{"name": "notebook", "image": "registry.k8s.io/pause:3.10"}]},
        }
        core.create_namespaced_pod(ns.name, notebook_pod)
        notebook = admin.sanitize_for_serialization(wait_running(core, ns.name, "jupyter-bench"))
        tmp = workdir / f"run-{index}"
        tmp.mkdir()
        driver = NodeDriver(node, ns, notebook, tmp, n=2, timeout=300)
        try:
            ready, _ = driver.read_until("executors", 330)
            if "error" in ready:
                raise RuntimeError(f"start_cluster failed on the real node: {ready['message']}")
            return float(ready["seconds"])
        finally:
            driver.close()
    finally:
        core.delete_namespace(ns.name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "node.json"))
    parser.add_argument(
        "--cold-import", action="store_true", help="also time importing the images into an empty containerd root"
    )
    parser.add_argument(
        "--network-policies",
        action="store_true",
        help="give each namespace the spawner's NetworkPolicies and enforce them (kube-network-policies)",
    )
    args = parser.parse_args()
    from kubernetes import config

    started = time.perf_counter()
    images = build_all()
    build_s = time.perf_counter() - started
    results: dict[str, Any] = {"image_build_s": build_s, "network_policies": args.network_policies}
    results["notebook_image_mib"] = images["notebook"].size_bytes / 2**20
    with tempfile.TemporaryDirectory(prefix="occam-bench-node-") as tmp, ControlPlane(find_binaries()) as plane:
        started = time.perf_counter()
        with RealNode(plane, images) as node:
            results["node_join_s"] = time.perf_counter() - started
            results["image_import_s"] = node.import_seconds
            admin = config.new_client_from_config(str(plane.kubeconfig))
            node_runs, embedded_runs = [], []
            enforcer = PolicyEnforcer(plane, admin, node.name) if args.network_policies else contextlib.nullcontext()
            with node.exclusive(), enforcer:
                for i in range(args.repeats):
                    node_runs.append(node_start(node, admin, i, Path(tmp), policies=args.network_policies))
                    embedded_runs.append(embedded_start())
            admin.close()
        if args.cold_import:
            with RealNode(plane, images, fresh_root=True) as cold:
                results["cold_image_import_s"] = cold.import_seconds
    node_s, embedded_s = statistics.median(node_runs), statistics.median(embedded_runs)
    results["start_cluster_n2"] = {
        "real_node_s": node_runs,
        "embedded_s": embedded_runs,
        "real_node_median_s": node_s,
        "embedded_median_s": embedded_s,
        "ratio": node_s / embedded_s,
    }
    rows = [
        ("measure", "real node", "embedded", "ratio"),
        (
            f"start_cluster(n=2) to 2 executors registered (s, median of {args.repeats})",
            f"{node_s:.1f}",
            f"{embedded_s:.1f}",
            f"{node_s / embedded_s:.2f}",
        ),
        ("small images' build, notebook image found (s)", f"{build_s:.1f}", "", ""),
        ("image import into containerd, cached root (s)", f"{results['image_import_s']:.1f}", "", ""),
        ("node join incl. import (s)", f"{results['node_join_s']:.1f}", "", ""),
        ("notebook image (MiB, uncompressed)", f"{results['notebook_image_mib']:.0f}", "", ""),
    ]
    if "cold_image_import_s" in results:
        rows.append(("image import into an empty containerd root (s)", f"{results['cold_image_import_s']:.1f}", "", ""))
    print(format_table(rows))
    write_results(args.out, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
