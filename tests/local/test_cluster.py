"""start_cluster on this machine: real executor JVMs, the user-facing surface, errors and clean-up."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from occam import ClusterStoppedError, ConfigError, start_cluster

from .leakcheck import leftovers, wait_until_clean

DRIVER = str(Path(__file__).with_name("driver_process.py"))


class DriverProcess:
    """A cluster started by another Python process, as a notebook kernel would."""

    def __init__(self, **options):
        self.proc = subprocess.Popen(
            [sys.executable, DRIVER, json.dumps(options)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.facts = json.loads(self.proc.stdout.readline())

    def command(self, line: str) -> str:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()


def java_processes() -> set[int]:
    return {p.pid for p in psutil.process_iter(["name"]) if p.info["name"] == "java"}


def test_executors_are_separate_processes(cluster):
    pids = set(cluster.sc.parallelize(range(40), 8).map(lambda _: os.getpid()).distinct().collect())
    assert len(pids) == 2
    assert os.getpid() not in pids
    assert cluster.executor_count() == 2


def test_status_repr_and_notebook_view(cluster):
    status = cluster.status()
    assert status["state"] == "running" and status["executors"] == 2 and status["backend"] == "embedded"
    assert repr(cluster).startswith(f"<Cluster {cluster.name} running: 2/2 executors")
    page = cluster._repr_html_()
    assert f'href="{cluster.dashboard_link}"' in page and "Spark UI" in page


def test_dashboard_link_serves_the_spark_ui(cluster):
    with urllib.request.urlopen(cluster.dashboard_link + "/executors/", timeout=30) as response:
        assert response.status == 200
        assert b"Executors" in response.read()


def test_dashboard_link_goes_through_the_hub_proxy(cluster, monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/ada/")
    port = cluster.sc.uiWebUrl.rsplit(":", 1)[1]
    assert cluster.dashboard_link == f"/user/ada/proxy/{port}/jobs/"


def test_a_second_cluster_in_the_same_process_is_refused(cluster):
    before = java_processes()
    with pytest.raises(ConfigError, match="already runs a Spark context"):
        start_cluster(n=1)
    assert java_processes() == before


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"n": 0}, "at least one executor"),
        ({"n": os.cpu_count() + 1}, f"this machine has {len(os.sched_getaffinity(0))}"),
        ({"n": 1, "gpu": True}, "no GPU is visible"),
        ({"n": 1, "memory": "4t"}, "ask for less memory"),
    ],
)
def test_bad_requests_fail_before_anything_starts(options, message):
    before = java_processes()
    with pytest.raises(ConfigError, match=message):
        start_cluster(**options)
    assert java_processes() == before


def test_stop_leaves_no_process_port_or_directory():
    driver = DriverProcess(n=2)
    facts = driver.facts
    assert facts["executors"] == 2
    # the driver JVM, two executor JVMs at least
    assert sum("java" in cmd for _, _, cmd in facts["processes"]) >= 3
    assert facts["ports"] and os.path.isdir(facts["work_dir"])
    assert driver.command("stop") == "stopped"
    assert leftovers(facts) == [] or wait_until_clean(facts, timeout=10) == []
    assert driver.command("stop") == "stopped"  # idempotent
    driver.command("exit")
    driver.proc.wait(timeout=30)


def test_driver_killed_with_sigkill_leaves_nothing():
    driver = DriverProcess(n=2)
    os.kill(driver.proc.pid, signal.SIGKILL)
    driver.proc.wait()
    assert wait_until_clean(driver.facts, timeout=60) == []


def test_interpreter_exit_without_stop_cleans_up():
    driver = DriverProcess(n=1)
    driver.proc.stdin.write("exit\n")
    driver.proc.stdin.flush()
    driver.proc.wait(timeout=60)
    assert wait_until_clean(driver.facts, timeout=30) == []


def test_timeout_names_what_did_not_come_up_and_cleans_up(tmp_path):
    started = time.monotonic()
    name = f"occam-timeout-{os.getpid()}"
    driver = DriverProcess(n=2, timeout=1, name=name)
    assert driver.facts["error"] == "ClusterStartError"
    message = driver.facts["message"]
    assert "of 2 executors registered within 1 s" in message
    assert "Raise timeout=" in message
    assert time.monotonic() - started < 60
    driver.proc.wait(timeout=60)

    def left():
        procs = [p for p in psutil.process_iter(["cmdline"]) if name in " ".join(p.info["cmdline"] or [])]
        dirs = list(Path(tempfile.gettempdir()).glob(f"{name}-*"))
        return procs + dirs

    deadline = time.monotonic() + 30
    while left() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert left() == []


def test_operations_on_a_stopped_cluster_say_so(cluster):
    from occam.cluster import Cluster

    stopped = Cluster(cluster.spec, cluster.backend)
    stopped._stopped = True
    with pytest.raises(ClusterStoppedError, match="start a new one"):
        _ = stopped.spark
    assert stopped.status()["state"] == "stopped" and stopped.dashboard_link is None
