"""The student namespaces' NetworkPolicies, enforced for real on the real node, tried from real pods.

Two students' namespaces are made as OccamSpawner makes them (:func:`spawner.namespace.namespace_objects`,
applied by :func:`spawner.apply.prepare_namespace`, the NetworkPolicies of :mod:`spawner.network_policy`
included), plus a stand-in hub namespace. Each pod runs the executor image with a small agent: it
accepts connections on its listening ports, and on its control port (reached from this machine, whose root
traffic the enforcer lets through) tries a TCP connection from inside the pod and says what happened.

First, with no enforcement (the bridge CNI ignores NetworkPolicies), every path below connects: the
hostile attempts are real ways out, not typos. Some go through ClusterIP Services (which kube-proxy,
:mod:`.kubeproxy`, DNATs to the pods): the policies of the pod behind the Service apply. Then
kube-network-policies runs on the node (:class:`.netpolicy.PolicyEnforcer`) and the same pods try again: the student's own notebook and
executors still reach each other and the hub's API; another student's executor, the metadata address
(a stand-in answering at 169.254.169.254, :class:`.netpolicy.MetadataStandIn`), the hub's other ports and
the hub from an executor time out, the packets dropped by the enforcer. The tally of hostile attempts
is printed at the end, as tests/kubernetes/test_hostile_student.py prints the API server's.
"""

from __future__ import annotations

import socket
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from spawner.apply import prepare_namespace
from spawner.limits import CourseLimits
from spawner.namespace import NOTEBOOK_LABELS, namespace_name, namespace_objects
from tests.kubernetes.fixtures import Kube
from tests.kubernetes.student import Tally, delete_namespaces, report_tally, restricted_pod_spec, wait_until

from .kubeproxy import ServiceProxy
from .netpolicy import MetadataStandIn, PolicyEnforcer, missing_enforcer
from .nodeconfig import API_SERVICE_IP, METADATA_ADDRESS
from .realnode import RealNode

LIMITS = CourseLimits(max_executors=2, cpu="2", memory="4Gi")
CONTROL_PORT = 9000
SPARK_RPC = 7078
GLOO = 40123  # a port chosen at run time, as Horovod's and Gloo's are
HUB_API, PROXY_PUBLIC, PROXY_API = 8081, 8000, 8001
HUB_LABELS = {"app": "jupyterhub", "component": "hub"}
EXECUTOR_LABELS = {"app.kubernetes.io/name": "occam", "app.kubernetes.io/component": "executor"}
#: How long an attempt waits for its connection: a dropped SYN never answers.
CONNECT_SECONDS = 3.0

AGENT = """
import http.server, socket, sys, threading, urllib.parse

def serve(port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(16)
    while True:
        c, _ = s.accept(); c.sendall(b"ok"); c.close()

for port in sys.argv[1:]:
    threading.Thread(target=serve, args=(int(port),), daemon=True).start()

class Probe(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        try:
            with socket.create_connection((q["host"][0], int(q["port"][0])), timeout=float(q["timeout"][0])) as c:
                c.settimeout(3); result = "open" if c.recv(2) == b"ok" else "open-silent"
        except socket.timeout: result = "timeout"
        except ConnectionRefusedError: result = "refused"
        except OSError as e: result = "error " + str(e.errno)
        self.send_response(200); self.end_headers(); self.wfile.write(result.encode())
    def log_message(self, *args): pass

http.server.ThreadingHTTPServer(("0.0.0.0", CONTROL_PORT), Probe).serve_forever()
""".replace("CONTROL_PORT", str(CONTROL_PORT))


@dataclass(frozen=True)
class Pods:
    """The running pods' IPs, by role, and the cluster IPs of two Services (``hub-service``,
    ``ada-executor-service``), which kube-proxy DNATs to the pods: the policies must see through that."""

    ip: dict[str, str]
    hub_namespace: str
    namespaces: tuple[str, ...]


def _agent_pod(name: str, image: str, labels: dict[str, str], ports: list[int]) -> dict[str, Any]:
    container = {
        "name": "agent",
        "image": image,
        "imagePullPolicy": "Never",
        "command": ["python", "-c", AGENT, *map(str, ports)],
        "resources": {"limits": {"cpu": "100m", "memory": "96Mi"}, "requests": {"cpu": "50m", "memory": "96Mi"}},
    }
    return {"metadata": {"name": name, "labels": labels}, "spec": restricted_pod_spec(container)}


def probe(pods: Pods, source: str, target: str, port: int) -> str:
    """What ``source``'s pod got when it tried to connect to ``target`` (a role or an address) on ``port``."""
    host = pods.ip.get(target, target)
    query = urllib.parse.urlencode({"host": host, "port": port, "timeout": CONNECT_SECONDS})
    url = f"http://{pods.ip[source]}:{CONTROL_PORT}/?{query}"
    with urllib.request.urlopen(url, timeout=CONNECT_SECONDS + 10) as response:
        return str(response.read().decode())


def _answers(host: str, port: int) -> bool:
    """Whether an agent answers ``ok`` at ``host:port`` when this machine connects."""
    with socket.create_connection((host, port), timeout=CONNECT_SECONDS) as connection:
        return connection.recv(2) == b"ok"


#: (name, source, target, port): the student's cluster's own paths, which must stay open.
ALLOWED = [
    ("executor to its notebook's Spark RPC port", "ada-executor", "ada-notebook", SPARK_RPC),
    ("notebook to its executor's Gloo port", "ada-notebook", "ada-executor", GLOO),
    ("notebook to the hub's API", "ada-notebook", "hub", HUB_API),
    ("notebook to the proxy's public port", "ada-notebook", "hub", PROXY_PUBLIC),
    ("notebook to the hub's API through its Service", "ada-notebook", "hub-service", HUB_API),
]
#: The hostile student's attempts: every one must be dropped once policies are enforced.
HOSTILE = [
    ("another student's executor port", "bob-executor", "ada-executor", GLOO),
    ("another student's notebook (Spark driver)", "bob-executor", "ada-notebook", SPARK_RPC),
    ("another student's Jupyter", "bob-notebook", "ada-notebook", 8888),
    ("the metadata address from an executor", "ada-executor", METADATA_ADDRESS, MetadataStandIn.PORT),
    ("the metadata address from the notebook", "ada-notebook", METADATA_ADDRESS, MetadataStandIn.PORT),
    ("the proxy's API port", "ada-notebook", "hub", PROXY_API),
    ("the hub's API from an executor", "ada-executor", "hub", HUB_API),
    ("another student's executor through a Service", "bob-executor", "ada-executor-service", GLOO),
    ("the proxy's API port through the hub's Service", "ada-notebook", "hub-service", PROXY_API),
]
TALLY = Tally()


@pytest.fixture(scope="module")
def pods(
    real_node: RealNode, service_proxy: ServiceProxy, kube: Kube, request: pytest.FixtureRequest
) -> Iterator[Pods]:
    """Two students' namespaces with their policies, a hub stand-in, the agents Running; all removed after."""
    from kubernetes import client

    assert kube.control_plane is not None
    missing = missing_enforcer(kube.control_plane.bin_dir)
    if missing:
        pytest.skip(f"no NetworkPolicy enforcement on this machine: {missing}")
    core = client.CoreV1Api(kube.admin)
    tag = uuid.uuid4().hex[:6]
    hub_ns = f"occam-netpol-hub-{tag}"
    users = {"ada": f"netpol-ada-{tag}", "bob": f"netpol-bob-{tag}"}
    image = real_node.images["notebook"].ref
    namespaces = [hub_ns, *(namespace_name(u) for u in users.values())]
    try:
        core.create_namespace({"metadata": {"name": hub_ns}})
        for user in users.values():
            prepare_namespace(
                kube.admin,
                namespace_objects(
                    user, LIMITS, hub_namespace=hub_ns, hub_selector={"app": "jupyterhub"},
                    api_server_cidrs=[f"{API_SERVICE_IP}/32"],
                ),
            )  # fmt: skip
        wanted = {"hub": (hub_ns, _agent_pod("hub", image, HUB_LABELS, [HUB_API, PROXY_PUBLIC, PROXY_API]))}
        for who, user in users.items():
            ns = namespace_name(user)
            wanted[f"{who}-notebook"] = (ns, _agent_pod("notebook", image, dict(NOTEBOOK_LABELS), [SPARK_RPC, 8888]))
            wanted[f"{who}-executor"] = (ns, _agent_pod("executor", image, EXECUTOR_LABELS, [GLOO]))
        with real_node.exclusive():
            for ns, body in wanted.values():
                wait_until(
                    f"the quota of {ns} to be counted",
                    lambda ns=ns, body=body: core.create_namespaced_pod(ns, body),
                    timeout=60,
                )
            ips = {}
            for role, (ns, body) in wanted.items():
                name = body["metadata"]["name"]

                def running(ns: str = ns, name: str = name) -> str | None:
                    pod = core.read_namespaced_pod(name, ns)
                    return pod.status.pod_ip if pod.status.phase == "Running" else None

                ips[role] = wait_until(f"pod {ns}/{name} to run", running, timeout=180)
        pods = Pods(ips, hub_ns, tuple(namespaces))
        for role in list(ips):
            wait_until(f"the agent in {role} to answer", lambda role=role: probe(pods, role, "127.0.0.1", CONTROL_PORT))
        services = {"hub-service": (hub_ns, HUB_LABELS, [HUB_API, PROXY_API])}
        services["ada-executor-service"] = (namespace_name(users["ada"]), EXECUTOR_LABELS, [GLOO])
        for role, (ns, selector, ports) in services.items():
            service = {
                "metadata": {"name": role},
                "spec": {"selector": selector, "ports": [{"name": f"p{p}", "port": p} for p in ports]},
            }
            # The cluster IP, not the name: the namespaces' policies allow DNS only to kube-dns pods and dnsCIDRs
            # (none here), and a name that does not resolve would look like a dropped connection.
            ips[role] = core.create_namespaced_service(ns, service).spec.cluster_ip
            for port in ports:  # kube-proxy REJECTs a Service's connections until it has synced its endpoints
                wait_until(f"kube-proxy to route {role} port {port}", lambda a=(ips[role], port): _answers(*a))
        yield pods
    finally:
        delete_namespaces(core, namespaces)
        report_tally(request, TALLY, "hostile student on the network")


@pytest.fixture(scope="module")
def metadata() -> Iterator[MetadataStandIn]:
    with MetadataStandIn() as stand_in:
        yield stand_in


def test_without_enforcement_every_path_connects(pods: Pods, metadata: MetadataStandIn) -> None:
    # The control: the bridge CNI ignores NetworkPolicies, so each hostile attempt below is a real way out.
    for name, source, target, port in ALLOWED + HOSTILE:
        assert probe(pods, source, target, port) == "open", name


@pytest.fixture(scope="module")
def enforced(pods: Pods, metadata: MetadataStandIn, policy_enforcer: PolicyEnforcer) -> PolicyEnforcer:
    # Policies take effect once the enforcer has seen the pods: wait for the first hostile path to close.
    name, source, target, port = HOSTILE[0]
    wait_until(f"the enforcer to drop {name}", lambda: probe(pods, source, target, port) == "timeout", timeout=60)
    return policy_enforcer


@pytest.mark.parametrize(("name", "source", "target", "port"), ALLOWED, ids=[a[0] for a in ALLOWED])
def test_the_student_s_own_paths_stay_open(enforced: PolicyEnforcer, pods: Pods, name, source, target, port) -> None:
    assert probe(pods, source, target, port) == "open"


@pytest.mark.parametrize(("name", "source", "target", "port"), HOSTILE, ids=[a[0] for a in HOSTILE])
def test_the_enforced_policies_drop(enforced: PolicyEnforcer, pods: Pods, name, source, target, port) -> None:
    TALLY.attempts.append(name)
    started = time.monotonic()
    result = probe(pods, source, target, port)
    assert result == "timeout", f"{name}: {result}"
    assert time.monotonic() - started >= CONNECT_SECONDS - 0.5  # never answered, not refused by the target
    TALLY.refused.append(name)


def test_every_hostile_attempt_was_dropped() -> None:
    assert TALLY.attempts, "run with the attempts above"
    assert TALLY.refused == TALLY.attempts, sorted(set(TALLY.attempts) - set(TALLY.refused))
