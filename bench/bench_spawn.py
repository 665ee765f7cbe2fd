"""Spawn latency through a real JupyterHub: OccamSpawner against plain KubeSpawner, 1 student and a workshop of 40.

    .venv/bin/python bench/bench_spawn.py [--users 40] [--out bench/results/spawn.json]

A loopback control plane (the kubernetes tier's, with 8 large kwok nodes) and, for each spawner in turn,
a real ``jupyterhub`` process with the real configurable-http-proxy, the hub running as a service
account with only the documented ClusterRole (:mod:`spawner.hub_rbac`). Each spawn is timed from the
REST call that starts it (``POST /hub/api/users/<name>/server``) until the hub reports the server
ready, which is after the notebook pod is Running, the hub's readiness check has answered and the
proxy route is added.

kwok's nodes run no containers, so no Jupyter server starts in the pod: one small HTTP responder on
loopback answers every hub readiness check (KubeSpawner's ``get_pod_url`` points at it). The time a real
notebook container takes to start is therefore not in these numbers; what is, is everything the hub and
the spawner do, and the control plane's scheduling.

Baseline: the same hub with plain KubeSpawner, every student's pod in one existing namespace, same image
and resources: the ratio is the cost of Occam's namespace preparation, node-fit check and notebook setup.
"""

from __future__ import annotations

import argparse
import http.server
import shutil
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from report import format_table, write_results  # noqa: E402

from spawner.namespace import HUB_NAMESPACE_ROLE  # noqa: E402
from tests.hub.hubprocess import CHP_INSTALL, HubProcess, find_chp, hub_account_kubeconfig  # noqa: E402
from tests.kubernetes.controlplane import ControlPlane  # noqa: E402
from tests.kubernetes.fixtures import find_binaries  # noqa: E402
from tests.kubernetes.kwok_stages import fake_node  # noqa: E402

NODES = [fake_node(f"node-{i}", cpu="64", memory="256Gi") for i in range(8)]
BASELINE_NAMESPACE = "bench-baseline"
SINGLE_RUNS = 3

COMMON = """
c.KubeSpawner.image = "registry.k8s.io/pause:3.10"
c.KubeSpawner.cpu_limit = 1.0
c.KubeSpawner.cpu_guarantee = 1.0
c.KubeSpawner.mem_limit = "1G"
c.KubeSpawner.mem_guarantee = "1G"
c.KubeSpawner.get_pod_url = lambda spawner, pod: {url!r}
c.JupyterHub.concurrent_spawn_limit = 200
"""
OCCAM = """
c.JupyterHub.spawner_class = "occam"
c.OccamSpawner.hub_namespace = "occam-hub"
c.OccamSpawner.course_limits = {"max_executors": 4, "cpu": "8", "memory": "16Gi", "gpus": 0}
"""
BASELINE = f"""
c.JupyterHub.spawner_class = "kubespawner.KubeSpawner"
c.KubeSpawner.enable_user_namespaces = False
c.KubeSpawner.namespace = {BASELINE_NAMESPACE!r}
"""


class _Ready(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        pass


def start_responder() -> tuple[http.server.ThreadingHTTPServer, str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ready)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def ready_users(hub: HubProcess) -> set[str]:
    users = hub.api("GET", "/users?state=ready&limit=200")
    items = users["items"] if isinstance(users, dict) else users
    return {u["name"] for u in items}


def spawn_all(hub: HubProcess, names: list[str], timeout: float = 600) -> dict[str, float]:
    """Start every user's server at once; seconds from each one's POST until the hub reports it ready."""
    for name in names:
        hub.api("POST", f"/users/{name}", ok=(201, 409))
    started: dict[str, float] = {}

    def start(name: str) -> None:
        started[name] = time.perf_counter()
        hub.api("POST", f"/users/{name}/server")

    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        list(pool.map(start, names))
    latency: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    rounds = 0
    while len(latency) < len(names):
        now = time.perf_counter()
        for name in ready_users(hub) & set(names):
            latency.setdefault(name, now - started[name])
        rounds += 1
        if rounds % 20 == 0:  # a failed spawn leaves no server: stop waiting for it
            failed = [n for n in names if n not in latency and hub.server(n) is None]
            if failed:
                raise RuntimeError(f"spawns failed for {failed[:5]}: see {hub.log}\n{hub.log_tail()}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(latency)}/{len(names)} servers ready after {timeout:.0f}s")
        time.sleep(0.1)
    return latency


def stop_all(hub: HubProcess, names: list[str]) -> None:
    with ThreadPoolExecutor(max_workers=min(len(names), 16)) as pool:
        list(pool.map(lambda n: hub.api("DELETE", f"/users/{n}/server"), names))
    for name in names:
        hub.wait_stopped(name, timeout=300)


def measure(hub: HubProcess, label: str, users: int) -> dict[str, Any]:
    single = []
    for i in range(SINGLE_RUNS):
        name = f"{label}-solo-{i}"
        single.append(spawn_all(hub, [name])[name])
        stop_all(hub, [name])
    names = [f"{label}-ws-{i:02d}" for i in range(users)]
    started = time.perf_counter()
    burst = spawn_all(hub, names)
    wall = time.perf_counter() - started
    stop_all(hub, names)
    values = sorted(burst.values())
    return {
        "single_s": single,
        "single_median_s": statistics.median(single),
        "burst_users": users,
        "burst_all_ready_s": wall,
        "burst_p50_s": statistics.median(values),
        "burst_p95_s": values[min(len(values) - 1, int(0.95 * len(values)))],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=40)
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "spawn.json"))
    args = parser.parse_args()
    chp = find_chp()
    if chp is None:
        sys.exit(f"the spawn benchmark needs configurable-http-proxy: run `{CHP_INSTALL}`")
    from kubernetes import client, config

    responder, url = start_responder()
    results: dict[str, Any] = {}
    tmp = tempfile.mkdtemp(prefix="occam-bench-spawn-")
    try:
        with ControlPlane(find_binaries(), nodes=NODES) as plane:
            admin = config.new_client_from_config(str(plane.kubeconfig))
            client.CoreV1Api(admin).create_namespace({"metadata": {"name": BASELINE_NAMESPACE}})
            kubeconfig = hub_account_kubeconfig(admin, Path(tmp) / "hub.kubeconfig")
            # Plain KubeSpawner's pods go to one namespace the admin made: there the hub gets what it gets in
            # an Occam namespace (spawner.hub_rbac.HUB_NAMESPACE_RULES), as Z2JH's Role gives it in its own.
            client.RbacAuthorizationV1Api(admin).create_namespaced_role_binding(
                BASELINE_NAMESPACE,
                {
                    "metadata": {"name": "hub"},
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "ClusterRole",
                        "name": HUB_NAMESPACE_ROLE,
                    },
                    "subjects": [{"kind": "ServiceAccount", "name": "hub", "namespace": "occam-hub"}],
                },
            )
            for label, spawner_config in (("occam", OCCAM), ("kubespawner", BASELINE)):
                workdir = Path(tmp) / label
                workdir.mkdir()
                with HubProcess(workdir, kubeconfig, COMMON.format(url=url) + spawner_config, chp=chp) as hub:
                    print(f"{label}: {SINGLE_RUNS} single spawns, then {args.users} at once ...", flush=True)
                    results[label] = measure(hub, label, args.users)
            admin.close()
    except BaseException:
        print(f"the hubs' logs are kept in {tmp}", file=sys.stderr)
        raise
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    finally:
        responder.shutdown()

    occam, base = results["occam"], results["kubespawner"]
    rows = [["measure", "occam", "baseline (KubeSpawner)", "ratio"]]
    for key, text in (
        ("single_median_s", f"1 user, REST start -> ready (s, median of {SINGLE_RUNS})"),
        ("burst_all_ready_s", f"{args.users} users at once, until all ready (s)"),
        ("burst_p50_s", f"{args.users} users at once, per user p50 (s)"),
        ("burst_p95_s", f"{args.users} users at once, per user p95 (s)"),
    ):
        rows.append([text, f"{occam[key]:.2f}", f"{base[key]:.2f}", f"{occam[key] / base[key]:.2f}"])
    print(format_table(rows))
    results["ratios"] = {key: results["occam"][key] / base[key] for key in ("single_median_s", "burst_all_ready_s")}
    write_results(args.out, results)


if __name__ == "__main__":
    main()
