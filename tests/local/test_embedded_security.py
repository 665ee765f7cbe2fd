"""The embedded cluster's RPC is authenticated and encrypted, and its secret is on no command line.

Other users of the same machine reach its ports (the driver, the local-cluster master and workers): without
authentication one could register an executor and run code as the student. Real processes and a real socket.
"""

from __future__ import annotations

import socket
import struct

import psutil

from occam import Cluster

RPC_REQUEST = 3  # Spark network-common's Message.Type.RpcRequest
RPC_FAILURE = 5


def unauthenticated_rpc(port: int, body: bytes = b"run this for me") -> bytes:
    """Send one RpcRequest frame without any handshake, as a foreign local process would; return the reply."""
    frame = struct.pack(">qbqi", 8 + 1 + 8 + 4 + len(body), RPC_REQUEST, 42, len(body)) + body
    reply = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(frame)
        conn.settimeout(5)
        try:
            while chunk := conn.recv(65536):
                reply += chunk
        except TimeoutError:
            pass
    return reply


def test_rpc_is_authenticated_and_encrypted_with_a_private_random_secret(cluster: Cluster) -> None:
    conf = cluster.sc.getConf()
    assert conf.get("spark.authenticate") == "true"
    assert conf.get("spark.network.crypto.enabled") == "true"
    secret = conf.get("spark.authenticate.secret")
    assert secret and len(secret) >= 32
    jvm = psutil.Process(cluster.backend.driver.gateway_pid)  # type: ignore[attr-defined]
    command_lines = []
    for proc in [jvm, *jvm.children(recursive=True)]:
        try:
            command_lines.append(" ".join(proc.cmdline()))
        except psutil.Error:
            continue
    assert len(command_lines) >= 1 + cluster.n, "the driver JVM and the executor JVMs"
    assert not [line for line in command_lines if secret in line], "the secret is readable in the process table"


def test_a_connection_without_the_secret_is_refused_before_any_rpc_runs(cluster: Cluster) -> None:
    port = int(cluster.sc.getConf().get("spark.driver.port"))
    reply = unauthenticated_rpc(port)
    # The server answers the frame with a failure naming the missing handshake, and runs nothing.
    assert reply[8] == RPC_FAILURE, reply[:64]
    assert b"SaslMessage" in reply or b"challenge" in reply, reply[:300]
    # The cluster still works for its owner.
    assert cluster.sc.parallelize(range(100), 4).sum() == 4950
