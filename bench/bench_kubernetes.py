"""Kubernetes backend benchmarks on the loopback control plane of the kubernetes test tier.

    .venv/bin/python bench/bench_kubernetes.py [--out bench/results/kubernetes.json]

kwok's nodes report pods Running without running containers, so what is timed is the control-plane
path: from ``start_cluster(n)`` in a driver process (a real Spark driver creating executor pods through
the API server with the student's token) until n executor pods are Running, against the baseline of
the same n pods created directly through the API. The 50-cluster load creates 50 clusters of 4 in 50
namespaces at once through the backend's own steps (quota check, Secret, pods from the template), as
50 students pressing start together would; 50 Spark driver JVMs do not fit a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from report import format_table, write_results  # noqa: E402

from occam.backends.kubernetes import KubernetesBackend  # noqa: E402
from occam.kubernetes import objects  # noqa: E402
from occam.kubernetes.api import NamespaceApi  # noqa: E402
from occam.kubernetes.settings import KubernetesSettings  # noqa: E402
from occam.spec import make_spec  # noqa: E402
from tests.kubernetes.controlplane import ControlPlane  # noqa: E402
from tests.kubernetes.fixtures import find_binaries  # noqa: E402
from tests.kubernetes.kwok_stages import fake_node  # noqa: E402
from tests.kubernetes.student import create_student_namespace, wait_running, wait_until  # noqa: E402

IMAGE = "registry.example/occam-executor:bench"
NODES = [fake_node(f"node-{i}", cpu="64", memory="256Gi") for i in range(8)]


def running_count(core: Any, namespace: str, selector: str) -> int:
    pods = core.list_namespaced_pod(namespace, label_selector=selector).items
    return sum(1 for p in pods if p.status.phase == "Running")


def notebook_pod(core: Any, namespace: str) -> Any:
    body = {
        "metadata": {"name": "jupyter-bench"},
        "spec": {"containers": [{"name": "notebook", "image": "registry.k8s.io/pause:3.10"}]},
    }
    core.create_namespaced_pod(namespace, body)
    return wait_running(core, namespace, "jupyter-bench")


def start_cluster_to_running(plane: ControlPlane, admin: Any, n: int, workdir: Path) -> float:
    from kubernetes import client

    core = client.CoreV1Api(admin)
    ns = create_student_namespace(admin, f"bench-start-{n}", workdir)
    pod = notebook_pod(core, ns.name)
    name = f"occam-bench-{n}"
    env = {
        "KUBECONFIG": str(ns.kubeconfig),
        "OCCAM_K8S_NAMESPACE": ns.name,
        "OCCAM_K8S_POD_NAME": pod.metadata.name,
        "OCCAM_K8S_POD_UID": pod.metadata.uid,
        "OCCAM_K8S_POD_IP": "127.0.0.1",
        "OCCAM_K8S_EXECUTOR_IMAGE": IMAGE,
        "OCCAM_K8S_API_SERVER": admin.configuration.host,
    }
    env = {**os.environ, **env}
    driver = REPO / "tests" / "kubernetes" / "k8s_driver.py"
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, str(driver), json.dumps({"n": n, "timeout": 600, "name": name})],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        selector = f"occam.io/cluster={name}"
        wait_until(f"{n} executor pods Running", lambda: running_count(core, ns.name, selector) >= n, timeout=300)
        return time.perf_counter() - started
    finally:
        proc.kill()
        proc.wait(timeout=30)
        core.delete_namespace(ns.name)


def direct_pods_to_running(admin: Any, n: int, workdir: Path) -> float:
    """Baseline: the same n executor pods created straight through the API, until Running."""
    from kubernetes import client

    core = client.CoreV1Api(admin)
    ns = create_student_namespace(admin, f"bench-direct-{n}", workdir)
    spec = make_spec(n, cores=1, memory="1g", gpu=False, timeout=60, name=f"direct-{n}")
    settings = KubernetesSettings(namespace=ns.name, pod_name="x", pod_ip="127.0.0.1", executor_image=IMAGE)
    template = objects.executor_pod_template(spec, settings)
    started = time.perf_counter()
    for i in range(n):
        pod = json.loads(json.dumps(template))
        pod["metadata"]["name"] = f"direct-{n}-exec-{i}"
        core.create_namespaced_pod(ns.name, pod)
    wait_until(
        f"{n} pods Running", lambda: running_count(core, ns.name, f"occam.io/cluster=direct-{n}") >= n, timeout=300
    )
    elapsed = time.perf_counter() - started
    core.delete_namespace(ns.name)
    return elapsed


def many_clusters(admin: Any, clusters: int, n: int, workdir: Path) -> dict[str, Any]:
    """``clusters`` students at once, each: quota check, Secret, n executor pods, until Running."""
    from kubernetes import client

    core = client.CoreV1Api(admin)
    namespaces = [create_student_namespace(admin, f"bench-many-{i}", workdir) for i in range(clusters)]
    notebooks = [notebook_pod(core, ns.name) for ns in namespaces]

    def one(index: int) -> float:
        ns, pod = namespaces[index], notebooks[index]
        settings = KubernetesSettings(
            namespace=ns.name,
            pod_name=pod.metadata.name,
            pod_uid=pod.metadata.uid,
            pod_ip="127.0.0.1",
            executor_image=IMAGE,
        )
        spec = make_spec(n, cores=1, memory="1g", gpu=False, timeout=60, name=f"many-{index}")
        backend = KubernetesBackend(spec, settings=settings, api=NamespaceApi(ns.name, kubeconfig=str(ns.kubeconfig)))
        started = time.perf_counter()
        backend.check()
        files = workdir / f"cluster-{index}"  # the driver's secret file and pod template
        files.mkdir()
        backend.create_objects(str(files))
        template = objects.executor_pod_template(spec, settings)
        for i in range(n):
            body = json.loads(json.dumps(template))
            body["metadata"]["name"] = f"many-{index}-exec-{i}"
            backend.api.core.create_namespaced_pod(ns.name, body)
        wait_until(
            "pods Running",
            lambda: running_count(backend.api.core, ns.name, f"occam.io/cluster=many-{index}") >= n,
            timeout=600,
        )
        return time.perf_counter() - started

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clusters) as pool:
        per_cluster = list(pool.map(one, range(clusters)))
    total = time.perf_counter() - started
    for ns in namespaces:
        core.delete_namespace(ns.name)
    ordered = sorted(per_cluster)
    return {
        "clusters": clusters,
        "executors_each": n,
        "all_running_s": total,
        "per_cluster_p50_s": statistics.median(ordered),
        "per_cluster_p95_s": ordered[int(0.95 * (len(ordered) - 1))],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "kubernetes.json"))
    args = parser.parse_args()
    from kubernetes import config

    with (
        tempfile.TemporaryDirectory(prefix="occam-bench-k8s-") as tmp,
        ControlPlane(find_binaries(), nodes=NODES) as plane,
    ):
        workdir = Path(tmp)
        admin = config.new_client_from_config(str(plane.kubeconfig))
        results: dict[str, Any] = {"start_to_running": {}}
        for n in (4, 32):
            ours = start_cluster_to_running(plane, admin, n, workdir)
            direct = direct_pods_to_running(admin, n, workdir)
            results["start_to_running"][str(n)] = {
                "start_cluster_s": ours,
                "direct_pods_s": direct,
                "ratio": ours / direct,
            }
        results["concurrent"] = many_clusters(admin, 50, 4, workdir)
    rows = [("measure", "occam", "baseline", "ratio")]
    for n, r in results["start_to_running"].items():
        rows.append(
            (
                f"start_cluster(n={n}) to {n} pods Running (s)",
                f"{r['start_cluster_s']:.2f}",
                f"{r['direct_pods_s']:.2f} (pods via API)",
                f"{r['ratio']:.2f}",
            )
        )
    c = results["concurrent"]
    rows.append(("50 clusters x 4 in 50 namespaces, all Running (s)", f"{c['all_running_s']:.2f}", "-", "-"))
    rows.append(
        ("  per cluster p50 / p95 (s)", f"{c['per_cluster_p50_s']:.2f} / {c['per_cluster_p95_s']:.2f}", "-", "-")
    )
    print(format_table(rows))
    write_results(args.out, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
