"""What a real cluster's add-ons give pods, served on the real node's gateway: cluster DNS and the API Service.

A batch job's driver pod needs both. It reaches the API server as ``https://kubernetes.default.svc`` with its
service account's token (Spark's default ``spark.kubernetes.driver.master``), and its executors reach it by
the name of its headless Service (``<job>-driver-svc.<namespace>.svc``, Spark's ``spark.driver.host`` in
cluster mode). A cluster gets these from CoreDNS (which cannot be fetched here) and kube-proxy. So the harness
serves, on :data:`~.nodeconfig.GATEWAY` (the kubelet gives pods that address as their nameserver):

* DNS on UDP port 53, for names in :data:`~.nodeconfig.CLUSTER_DOMAIN`: ``kubernetes.default.svc`` is the
  gateway itself; a headless Service's name is the IPs of the running pods its selector picks, and any
  other Service's name its cluster IP (what CoreDNS answers for both), which kube-proxy routes to the
  Service's pods where a test runs it (:mod:`.kubeproxy`); every other name is NXDOMAIN.
* TCP port 443 on the gateway and on the Service's cluster IP :data:`~.nodeconfig.API_SERVICE_IP` (an
  address of the bridge; in-cluster clients take it from ``KUBERNETES_SERVICE_HOST``), forwarded to the
  API server on loopback: what kube-proxy does for the ``kubernetes`` Service (the node's kube-proxy leaves
  that one to this forwarder: :mod:`.kubeproxy` says why). TLS passes through; the API server's certificate
  names ``kubernetes.default.svc`` and that IP.

All of them answer only on the bridge's addresses, which only this machine and its pods reach.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import socketserver
import struct
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

DNS_PORT = 53
API_PORT = 443
TTL_SECONDS = 5

A, IN = 1, 1
NOERROR, SERVFAIL, NXDOMAIN = 0, 2, 3

#: A name's addresses (possibly none), or None when the name does not exist.
Resolver = Callable[[str], "list[str] | None"]


def parse_query(packet: bytes) -> tuple[int, int, str, int, bytes]:
    """``(id, flags, name, qtype, question)`` of a DNS query with one question; ``question`` is its raw bytes."""
    ident, flags, questions = struct.unpack("!HHH", packet[:6])
    if questions != 1:
        raise ValueError(f"{questions} questions")
    labels, offset = [], 12
    while packet[offset]:
        length = packet[offset]
        labels.append(packet[offset + 1 : offset + 1 + length].decode("ascii").lower())
        offset += 1 + length
    qtype, _qclass = struct.unpack("!HH", packet[offset + 1 : offset + 5])
    return ident, flags, ".".join(labels), qtype, packet[12 : offset + 5]


def answer(ident: int, flags: int, question: bytes, rcode: int, addresses: list[str]) -> bytes:
    """The response: authoritative, recursion available, one A record per address."""
    response_flags = 0x8000 | (flags & 0x7900) | 0x0400 | 0x0080 | rcode  # QR, opcode and RD echoed, AA, RA
    header = struct.pack("!HHHHHH", ident, response_flags, 1, len(addresses), 0, 0)
    records = b"".join(
        b"\xc0\x0c" + struct.pack("!HHIH", A, IN, TTL_SECONDS, 4) + socket.inet_aton(address) for address in addresses
    )
    return header + question + records


def respond(packet: bytes, resolve: Resolver) -> bytes | None:
    """The response to one query packet (None: not a query we can parse, dropped as a server would)."""
    try:
        ident, flags, name, qtype, question = parse_query(packet)
    except (ValueError, IndexError, struct.error, UnicodeDecodeError):
        return None
    try:
        addresses = resolve(name)
    except Exception:
        return answer(ident, flags, question, SERVFAIL, [])
    if addresses is None:
        return answer(ident, flags, question, NXDOMAIN, [])
    return answer(ident, flags, question, NOERROR, addresses if qtype == A else [])


def service_of(name: str, domain: str) -> tuple[str, str] | None:
    """``(service, namespace)`` of ``<service>.<namespace>.svc.<domain>`` (or without the domain), else None."""
    parts = name.split(".")
    if len(parts) < 3 or parts[2:] not in (["svc", *domain.split(".")], ["svc"]):
        return None
    return parts[0], parts[1]


class ClusterResolver:
    """Resolves cluster names from the API server (``core`` is a ``CoreV1Api`` of the admin)."""

    def __init__(self, core: Any, domain: str, api_address: str) -> None:
        self.core, self.domain, self.api_address = core, domain, api_address

    def __call__(self, name: str) -> list[str] | None:
        from kubernetes.client.exceptions import ApiException

        found = service_of(name, self.domain)
        if found is None:
            return None
        service, namespace = found
        if (service, namespace) == ("kubernetes", "default"):
            return [self.api_address]
        try:
            spec = self.core.read_namespaced_service(service, namespace, _request_timeout=5).spec
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        if spec.cluster_ip and spec.cluster_ip != "None":
            return [spec.cluster_ip]
        if not spec.selector:
            return []
        selector = ",".join(f"{k}={v}" for k, v in spec.selector.items())
        pods = self.core.list_namespaced_pod(namespace, label_selector=selector, _request_timeout=5).items
        return sorted(p.status.pod_ip for p in pods if p.status.phase == "Running" and p.status.pod_ip)


class _DnsHandler(socketserver.BaseRequestHandler):
    server: _DnsServer

    def handle(self) -> None:
        packet, sock = self.request
        response = respond(packet, self.server.resolve)
        if response is not None:
            sock.sendto(response, self.client_address)


class _DnsServer(socketserver.ThreadingUDPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], resolve: Resolver) -> None:
        self.resolve = resolve
        super().__init__(address, _DnsHandler)


class _ForwardHandler(socketserver.BaseRequestHandler):
    server: _Forwarder

    def handle(self) -> None:
        client: socket.socket = self.request
        with socket.create_connection(self.server.upstream, timeout=10) as upstream:
            upstream.settimeout(None)
            peer = {client: upstream, upstream: client}
            self.server.track(client, upstream)
            with selectors.DefaultSelector() as selector:
                for sock in peer:
                    selector.register(sock, selectors.EVENT_READ)
                while True:
                    for key, _ in selector.select():
                        try:
                            data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                            if not data:
                                return
                            peer[key.fileobj].sendall(data)  # type: ignore[index]
                        except OSError:
                            return


class _Forwarder(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        super().__init__(address, _ForwardHandler)

    def track(self, *sockets: socket.socket) -> None:
        with self._lock:
            self._open.update(sockets)

    def close_all(self) -> None:
        """Close every forwarded connection (long-lived watches included)."""
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            self._open.clear()


class ClusterServices:
    """``with ClusterServices(core, dns_address, api_addresses, api_server, domain):`` DNS on ``dns_address``
    (which is also the address it gives for ``kubernetes.default.svc``), the API Service on ``api_addresses``."""

    def __init__(self, core: Any, dns_address: str, api_addresses: list[str], api_server: str, domain: str) -> None:
        api = urlsplit(api_server)
        assert api.hostname is not None and api.port is not None
        self.servers: list[socketserver.BaseServer] = []
        try:
            self.servers.append(_DnsServer((dns_address, DNS_PORT), ClusterResolver(core, domain, dns_address)))
            for address in api_addresses:
                self.servers.append(_Forwarder((address, API_PORT), (api.hostname, api.port)))
        except BaseException:
            for server in self.servers:
                server.server_close()
            raise
        self._threads = [
            threading.Thread(target=server.serve_forever, name=f"occam-node-{type(server).__name__}", daemon=True)
            for server in self.servers
        ]

    def __enter__(self) -> ClusterServices:
        for thread in self._threads:
            thread.start()
        return self

    @property
    def _serving(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        serving = self._serving
        for server in self.servers:
            if serving:  # shutdown() waits for serve_forever, which never began otherwise
                server.shutdown()
            server.server_close()
            if isinstance(server, _Forwarder):
                server.close_all()
        for thread in self._threads:
            thread.join(timeout=10)
