"""The real node itself: it joins the control plane, runs pods in their own network namespaces, and keeps
pod traffic on this machine.

Everything here is real: the kubelet, containerd, runc, the CNI bridge; the busybox image is built here
from this machine's busybox-static, the sandbox (pause) image from tests/node/pause.c.
"""

from __future__ import annotations

import http.server
import ipaddress
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.kubernetes.student import wait_until

from .realnode import GATEWAY, LABEL, SUBNET, TAINT, RealNode


def pod_log(node: RealNode, namespace: str, pod: str) -> str:
    """The pod's container output, read from the kubelet's log folder (it stays there after the container exits)."""
    assert node.dir is not None
    files = sorted(Path(node.dir, "pod-logs").glob(f"{namespace}_{pod}_*/*/*.log"))
    return "".join(line.split(" ", 3)[-1] for f in files for line in f.read_text().splitlines(keepends=True))


@pytest.fixture
def host_server() -> Iterator[str]:
    """An HTTP server on the bridge's gateway address (this machine, as pods see it): ``"<ip> <port>"``."""

    class Hello(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"hello from the host\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer((GATEWAY, 0), Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"{GATEWAY} {server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_node_is_ready_labelled_and_tainted_against_other_tiers_pods(real_node, admin):
    node = admin.read_node(real_node.name)
    assert node.metadata.labels[LABEL[0]] == LABEL[1]
    assert [c.status for c in node.status.conditions if c.type == "Ready"] == ["True"]
    assert [(t.key, t.effect) for t in node.spec.taints or []] == [(TAINT["key"], TAINT["effect"])]
    assert node.status.node_info.container_runtime_version.startswith("containerd://1.6")
    assert {a.address for a in node.status.addresses if a.type == "InternalIP"} == {GATEWAY}


def test_a_pod_runs_in_its_own_network_namespace_and_reaches_only_this_machine(
    on_real_node, admin, namespace, host_server
):
    script = (
        "ip -4 -o addr show eth0; echo routes:; ip -4 route; "
        # busybox-static's wget crashes in glibc's static resolver; nc does not resolve an address literal.
        f"echo host: $(printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {host_server} | tail -n 1); "
        "ip route get 192.0.2.1 >/dev/null 2>&1 && echo outside: reachable || echo outside: unreachable; "
        "sleep 3600"
    )
    body = {
        "metadata": {"name": "probe"},
        "spec": {
            "containers": [
                {"name": "probe", "image": on_real_node.images["busybox"].ref, "command": ["sh", "-c", script]}
            ]
        },
    }
    admin.create_namespaced_pod(namespace.name, body)
    pod = wait_until(
        "the probe pod to run on the real node",
        lambda: (p := admin.read_namespaced_pod("probe", namespace.name)).status.phase == "Running" and p,
        timeout=120,
    )
    assert pod.spec.node_name == on_real_node.name
    assert ipaddress.ip_address(pod.status.pod_ip) in ipaddress.ip_network(SUBNET)
    assert pod.status.pod_ip != GATEWAY
    log = wait_until(
        "the probe's output", lambda: "outside:" in (t := pod_log(on_real_node, namespace.name, "probe")) and t
    )
    assert f"inet {pod.status.pod_ip}/24" in log  # the CNI address is the pod's own, inside its namespace
    routes = sorted(r.split() for r in log.split("routes:")[1].split("host:")[0].strip().splitlines())
    # No default route: the pods' subnet, and this machine's own addresses (and the metadata address, which
    # the host does not forward) through the gateway.
    expected = [[address, "via", GATEWAY, "dev", "eth0"] for address in on_real_node.pod_routes]
    expected.append([SUBNET, "dev", "eth0", "scope", "link", "src", pod.status.pod_ip])
    assert routes == sorted(expected)
    assert "host: hello from the host" in log
    assert "outside: unreachable" in log
    admin.delete_namespaced_pod("probe", namespace.name, grace_period_seconds=0)
    wait_until("the probe pod to be gone", lambda: not admin.list_namespaced_pod(namespace.name).items, timeout=60)
