"""The Spark UI through jupyter-server-proxy, as a student opens ``cluster.dashboard_link`` on JupyterHub.

A real Jupyter server (jupyter_server and jupyter-server-proxy from this venv, at the versions the notebook
image pins) serves the base URL JupyterHub gives a notebook (``JUPYTERHUB_SERVICE_PREFIX``), with the
extensions that pip enabled and nothing enabled by hand, as in the image. The Spark UI is the local tier's
real embedded cluster's. JupyterHub itself is not running: the server's own token stands in for the hub's
login, so what is tested is the notebook side of the path (hub's proxy -> notebook server -> Spark UI).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from occam import Cluster

PREFIX = "/user/student/"
TOKEN = "occam-test-token"


@dataclass
class JupyterServer:
    url: str
    log: Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, token: str | None = TOKEN) -> tuple[int, str, str]:
    """Status, final URL (after redirects) and body of a GET."""
    headers = {"Authorization": f"token {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as response:
            return response.status, response.url, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, url, e.read().decode(errors="replace")


@pytest.fixture
def jupyter(tmp_path: Path) -> Iterator[JupyterServer]:
    port = free_port()
    log = tmp_path / "jupyter.log"
    env = {
        **os.environ,
        # The user's own Jupyter config stays out; the venv's etc/jupyter (where pip enabled the proxy) is read.
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "JUPYTER_DATA_DIR": str(tmp_path / "data"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
    }
    cmd = [
        sys.executable,
        "-m",
        "jupyter_server",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.base_url={PREFIX}",
        f"--IdentityProvider.token={TOKEN}",
        "--ServerApp.open_browser=False",
        f"--ServerApp.root_dir={tmp_path}",
    ]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = JupyterServer(f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"the Jupyter server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if get(f"{server.url}{PREFIX}api/status")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"the Jupyter server did not answer within 90 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


def test_dashboard_link_opens_the_spark_ui_through_the_notebook_server(
    cluster: Cluster, jupyter: JupyterServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", PREFIX)
    link = cluster.dashboard_link
    assert link is not None
    match = re.fullmatch(rf"{PREFIX}proxy/(\d+)/jobs/", link)
    assert match, link
    status, _, body = get(jupyter.url + link)
    assert status == 200, f"{status}: {body[:500]}\n{jupyter.log.read_text()[-2000:]}"
    assert "Spark Jobs" in body
    # The proxy tells Spark its path (X-Forwarded-Context), so the UI's own links stay behind the proxy.
    links = set(re.findall(r'href="([^"]*)"', body))
    assert f"{PREFIX}proxy/{match.group(1)}/stages/" in links
    assert not any(h.startswith("/") and not h.startswith(PREFIX) for h in links), sorted(links)


def test_the_spark_ui_is_not_open_without_the_notebook_login(cluster: Cluster, jupyter: JupyterServer) -> None:
    port = cluster.spark.sparkContext.uiWebUrl.rsplit(":", 1)[1]
    status, final_url, body = get(f"{jupyter.url}{PREFIX}proxy/{port}/jobs/", token=None)
    assert "Spark Jobs" not in body
    assert status in (401, 403) or "/login" in final_url, (status, final_url)
