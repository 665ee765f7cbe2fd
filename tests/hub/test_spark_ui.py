"""The Spark UI of a notebook's cluster, opened through the hub's proxy and jupyter-server-proxy.

A real hub and proxy, the stand-in Jupyter server of the student's notebook pod (with jupyter-server-proxy,
as the notebook image has), and a real Spark driver on loopback with the environment the spawner gives
the notebook: the UI's pages, links and assets work under ``/user/<name>/proxy/<port>/``, the path
``cluster.dashboard_link`` gives.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from pathlib import Path

from spawner.namespace import namespace_name
from spawner.notebook_pod import SPARK_UI_PROXY_BASE_ENV, spark_ui_env
from tests.kubernetes.controlplane import free_port
from tests.kubernetes.fixtures import Kube

from .hubprocess import HubProcess

DRIVER = Path(__file__).with_name("spark_ui_driver.py")


def _wait_for_line(proc: subprocess.Popen, expected: str, timeout: float) -> None:
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(proc.stdout.readline() if proc.stdout else ""), daemon=True)
    reader.start()
    reader.join(timeout)
    if not lines or lines[0].strip() != expected:
        raise TimeoutError(f"the Spark driver did not print {expected!r} within {timeout:.0f}s (got {lines!r})")


def test_the_spark_ui_works_through_the_hubs_proxy(kube: Kube, hub: HubProcess, student: str):
    from kubernetes import client

    hub.start_server(student)
    hub.wait_ready(student)
    ns = namespace_name(student)
    pods = client.CoreV1Api(kube.admin).list_namespaced_pod(ns, label_selector="component=singleuser-server")
    env = {e.name: e.value for e in pods.items[0].spec.containers[0].env}
    prefix = f"/user/{student}/"
    assert env["JUPYTERHUB_SERVICE_PREFIX"] == prefix
    assert env[SPARK_UI_PROXY_BASE_ENV] == f"/user/{student}/proxy/4040"

    # 4040 may be taken on a shared machine: run the UI on a free port, with what the spawner sets for it.
    port = free_port()
    driver_env = {**os.environ, **spark_ui_env(prefix, port)}
    proc = subprocess.Popen(
        [sys.executable, str(DRIVER), str(port)],
        env=driver_env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        _wait_for_line(proc, "ready", timeout=240)
        base = f"{hub.url}/user/{student}/proxy/{port}"
        status, body = hub.request("GET", f"{base}/jobs/")  # cluster.dashboard_link's path
        page = body.decode()
        assert status == 200, page[:300]
        assert "occam-ui-test" in page
        links = set(re.findall(r'(?:href|src)="(/[^"]*)"', page))
        assert links, "the page links somewhere"
        outside = sorted(link for link in links if not link.startswith(f"/user/{student}/proxy/{port}/"))
        assert outside == [], "every link stays behind the proxy"
        css = next(link for link in links if link.endswith(".css"))
        assert hub.request("GET", f"{hub.url}{css}")[0] == 200
        assert hub.request("GET", f"{base}/executors/")[0] == 200
    finally:
        if proc.stdin:
            proc.stdin.close()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
    hub.stop_server(student)
