"""The real node's cluster DNS and ``kubernetes`` Service (:mod:`.clusterservices`): the wire format on its own,
then the servers on the gateway answering from the API server; and ClusterIP Services routed by kube-proxy
(:mod:`.kubeproxy`): a pod reaches another namespace's pod by its Service's name, as does this machine."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import struct
import uuid

import pytest

from tests.kubernetes.controlplane import SERVICE_CIDR
from tests.kubernetes.student import delete_namespaces, restricted_pod_spec, wait_running, wait_until

from .clusterservices import API_PORT, DNS_PORT, NOERROR, NXDOMAIN, respond, service_of
from .kubeproxy import ServiceProxy
from .nodeconfig import API_SERVICE_IP, CLUSTER_DOMAIN, GATEWAY
from .realnode import RealNode


def query(name: str, qtype: int = 1, ident: int = 0x1234) -> bytes:
    labels = b"".join(bytes([len(part)]) + part.encode() for part in name.split("."))
    return struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 1) + labels + b"\0" + struct.pack("!HH", qtype, 1)


def read_answer(packet: bytes) -> tuple[int, int, list[str]]:
    """``(id, rcode, addresses)`` of a response to :func:`query`."""
    ident, flags, _questions, answers = struct.unpack("!HHHH", packet[:8])
    offset = 12
    while packet[offset]:
        offset += 1 + packet[offset]
    offset += 5
    addresses = []
    for _ in range(answers):
        rtype, _class, _ttl, length = struct.unpack("!HHIH", packet[offset + 2 : offset + 12])
        assert rtype == 1 and length == 4
        addresses.append(socket.inet_ntoa(packet[offset + 12 : offset + 16]))
        offset += 16
    return ident, flags & 0xF, addresses


RECORDS = {"svc-a.ns.svc.cluster.local": ["10.213.0.7", "10.213.0.8"], "svc-b.ns.svc.cluster.local": []}


def test_a_name_gets_its_a_records_an_empty_answer_for_other_types_and_unknown_names_nxdomain():
    resolve = RECORDS.get
    assert read_answer(respond(query("svc-a.ns.svc.cluster.local"), resolve)) == (
        0x1234,
        NOERROR,
        ["10.213.0.7", "10.213.0.8"],
    )
    assert read_answer(respond(query("SVC-A.ns.svc.cluster.local", qtype=28), resolve)) == (0x1234, NOERROR, [])
    assert read_answer(respond(query("svc-b.ns.svc.cluster.local"), resolve)) == (0x1234, NOERROR, [])
    assert read_answer(respond(query("example.org", ident=7), resolve)) == (7, NXDOMAIN, [])
    assert respond(b"\x00\x01garbage", resolve) is None


def test_service_names_with_and_without_the_cluster_domain_and_search_suffixes_that_are_not():
    assert service_of("job-driver-svc.ns.svc.cluster.local", "cluster.local") == ("job-driver-svc", "ns")
    assert service_of("job-driver-svc.ns.svc", "cluster.local") == ("job-driver-svc", "ns")
    assert service_of("job-driver-svc.ns.svc.ns.svc.cluster.local", "cluster.local") is None  # a search try
    assert service_of("ns.svc.cluster.local", "cluster.local") is None
    assert service_of("pypi.org", "cluster.local") is None


def ask(name: str) -> tuple[int, int, list[str]]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(10)
        sock.sendto(query(name), (GATEWAY, DNS_PORT))
        return read_answer(sock.recv(4096))


def test_pods_nameserver_answers_the_api_service_and_headless_services_from_the_api(
    on_real_node, admin, namespace, notebook
):
    assert ask(f"kubernetes.default.svc.{CLUSTER_DOMAIN}")[1:] == (NOERROR, [GATEWAY])
    admin.create_namespaced_service(
        namespace.name,
        {
            "metadata": {"name": "notebook"},
            "spec": {"clusterIP": "None", "selector": notebook["metadata"]["labels"], "ports": [{"port": 7078}]},
        },
    )
    assert ask(f"notebook.{namespace.name}.svc.{CLUSTER_DOMAIN}")[1:] == (NOERROR, [notebook["status"]["podIP"]])
    assert ask(f"absent.{namespace.name}.svc.{CLUSTER_DOMAIN}")[1] == NXDOMAIN


@pytest.mark.parametrize("address", [GATEWAY, API_SERVICE_IP])
def test_the_api_service_reaches_the_api_server_under_its_cluster_name(on_real_node, kube, address):
    context = ssl.create_default_context(cafile=str(kube.control_plane.ca_file))
    with (
        socket.create_connection((address, API_PORT), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="kubernetes.default.svc") as tls,  # verifies the name
    ):
        tls.sendall(b"GET /livez HTTP/1.0\r\nHost: kubernetes.default.svc\r\n\r\n")
        status = tls.recv(4096).split(b"\r\n", 1)[0]
    assert status.startswith(b"HTTP/1.0 ") or status.startswith(b"HTTP/1.1 "), status


SERVER = """
import socket, socketserver
class Hello(socketserver.BaseRequestHandler):
    def handle(self): self.request.sendall(b"hello from " + socket.gethostname().encode())
socketserver.ThreadingTCPServer(("0.0.0.0", 8080), Hello).serve_forever()
"""
#: Resolves the name through the pod's resolv.conf (the gateway's DNS, the namespace's search path) and connects.
CLIENT = """
import socket, sys
for name in sys.argv[1:]:
    address = socket.gethostbyname(name)
    with socket.create_connection((name, 80), timeout=10) as c:
        print(name, address, c.recv(100).decode(), flush=True)
"""


def _python_pod(name: str, image: str, script: str, *args: str, labels: dict[str, str] | None = None) -> dict:
    container = {
        "name": name,
        "image": image,
        "imagePullPolicy": "Never",
        "command": ["python", "-c", script, *args],
        "resources": {"limits": {"cpu": "100m", "memory": "64Mi"}, "requests": {"cpu": "50m", "memory": "64Mi"}},
    }
    return {
        "metadata": {"name": name, "labels": labels or {}},
        "spec": restricted_pod_spec(container, restartPolicy="Never"),
    }


def test_a_pod_reaches_another_namespace_s_pod_by_its_cluster_ip_service_name(
    on_real_node: RealNode, service_proxy: ServiceProxy, admin
):
    # The server's pod and Service in one namespace, the client in another: the Service's name resolves to its
    # cluster IP (the gateway's DNS), which kube-proxy DNATs to the server's pod (port 80 to its 8080).
    tag = uuid.uuid4().hex[:6]
    server_ns, client_ns = f"occam-svc-server-{tag}", f"occam-svc-client-{tag}"
    image = on_real_node.images["notebook"].ref
    try:
        for ns in (server_ns, client_ns):
            admin.create_namespace({"metadata": {"name": ns}})
        admin.create_namespaced_service(
            server_ns,
            {
                "metadata": {"name": "web"},
                "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
            },
        )
        cluster_ip = admin.read_namespaced_service("web", server_ns).spec.cluster_ip
        assert ipaddress.ip_address(cluster_ip) in ipaddress.ip_network(SERVICE_CIDR)
        assert ask(f"web.{server_ns}.svc.{CLUSTER_DOMAIN}")[1:] == (NOERROR, [cluster_ip])
        wait_until(
            f"the service account of {server_ns}",
            lambda: admin.create_namespaced_pod(server_ns, _python_pod("web", image, SERVER, labels={"app": "web"})),
            timeout=60,
        )
        wait_running(admin, server_ns, "web")
        names = [f"web.{server_ns}", f"web.{server_ns}.svc.{CLUSTER_DOMAIN}"]  # the first through the search path
        wait_until(
            f"the service account of {client_ns}",
            lambda: admin.create_namespaced_pod(client_ns, _python_pod("client", image, CLIENT, *names)),
            timeout=60,
        )

        def finished() -> str | None:
            pod = admin.read_namespaced_pod("client", client_ns)
            if pod.status.phase in ("Succeeded", "Failed"):
                return f"{pod.status.phase}\n{admin.read_namespaced_pod_log('client', client_ns)}"
            return None

        result = wait_until("the client pod to finish", finished, timeout=180)
        assert result.splitlines() == ["Succeeded", *(f"{name} {cluster_ip} hello from web" for name in names)]
        # From this machine too (kube-proxy's OUTPUT rules, masqueraded so that the answer comes back).
        with socket.create_connection((cluster_ip, 80), timeout=10) as connection:
            assert connection.recv(100) == b"hello from web"
    finally:
        delete_namespaces(admin, [server_ns, client_ns])
