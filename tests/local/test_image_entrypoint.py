"""The image entrypoint's ``executor`` command, run for real against a real Spark driver on this machine.

An executor pod runs ``/opt/occam/entrypoint.sh executor`` with variables Spark sets on the pod. Here the
same script (``python -I occam/executor_entrypoint.py executor``) gets those variables by hand, pointing
at a driver started in a separate process with ``local-cluster[0,...]``: a standalone cluster with no
workers of its own, so the executor started through the entrypoint is the only one and runs every task.
What stands in for Kubernetes: the pod's IP is 127.0.0.1 and no pod exists (the backend only passes the pod
name on). The container image itself cannot be built here (no base image can be pulled).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pyspark = pytest.importorskip("pyspark")

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "occam" / "executor_entrypoint.py"
EXECUTOR_ID = "7"

DRIVER = r"""
import json, sys
from pyspark.sql import SparkSession
spark = (SparkSession.builder.master("local-cluster[0,1,512]").appName("occam-entrypoint-test")
         .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
         .config("spark.executor.memory", "512m").config("spark.ui.enabled", "false").getOrCreate())
sc = spark.sparkContext
conf = sc.getConf()
url = f"spark://CoarseGrainedScheduler@{conf.get('spark.driver.host')}:{conf.get('spark.driver.port')}"
java_options = conf.get("spark.executor.extraJavaOptions", "")
print(json.dumps({"driver_url": url, "app_id": sc.applicationId, "java_options": java_options}), flush=True)
for line in sys.stdin:
    command = line.strip()
    if command == "executors":
        ids = sc._jvm.scala.collection.JavaConverters.seqAsJavaList(sc._jsc.sc().getExecutorIds())
        print(json.dumps(sorted(str(i) for i in ids)), flush=True)
    elif command == "job":
        print(json.dumps({"sum": sc.parallelize(range(100), 4).map(lambda x: x + 1).sum()}), flush=True)
    elif command == "exit":
        break
spark.stop()
"""


class Driver:
    """The driver process and its line protocol (one JSON line per command)."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log_path = log
        with log.open("w") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", DRIVER],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                env=env,
            )

    def read(self, what: str) -> object:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            tail = self.log_path.read_text()[-3000:]
            raise AssertionError(
                f"the test driver exited (status {self.proc.wait(timeout=30)}) while waiting for {what}:\n{tail}"
            )
        return json.loads(line)

    def ask(self, command: str) -> object:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.read(f"the answer to {command!r}")

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write("exit\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=60)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(timeout=30)


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[Driver]:
    env = {
        **os.environ,
        "PYSPARK_PYTHON": sys.executable,
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_LOCAL_DIRS": str(tmp_path / "driver-local"),
    }
    # A pip-installed Spark writes worker dirs under SPARK_HOME; there are no workers, but keep it unset.
    env.pop("SPARK_HOME", None)
    started = Driver(env, tmp_path / "driver.log")
    try:
        yield started
    finally:
        started.close()


def wait_for_executor(driver: Driver, executor: subprocess.Popen, timeout: float = 180) -> list[str]:
    deadline = time.monotonic() + timeout
    ids: list[str] = []
    while time.monotonic() < deadline:
        if executor.poll() is not None:
            raise AssertionError(f"the executor started by the entrypoint exited with status {executor.returncode}")
        ids = driver.ask("executors")  # type: ignore[assignment]
        if EXECUTOR_ID in ids:
            return ids
        time.sleep(1)
    raise AssertionError(f"executor {EXECUTOR_ID} did not register with the driver within {timeout:.0f} s (saw {ids})")


def test_entrypoint_executor_registers_with_a_real_driver_and_runs_python_tasks(driver: Driver, tmp_path: Path) -> None:
    info = driver.read("the driver's URL")
    assert isinstance(info, dict)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "SPARK_HOME": os.path.dirname(pyspark.__file__),
        "SPARK_DRIVER_URL": info["driver_url"],
        "SPARK_EXECUTOR_ID": EXECUTOR_ID,
        "SPARK_EXECUTOR_CORES": "1",
        "SPARK_EXECUTOR_MEMORY": "512m",
        "SPARK_APPLICATION_ID": info["app_id"],
        "SPARK_EXECUTOR_POD_IP": "127.0.0.1",
        "SPARK_RESOURCE_PROFILE_ID": "0",
        "SPARK_EXECUTOR_POD_NAME": "occam-entrypoint-test-exec-7",
        "SPARK_LOCAL_DIRS": str(tmp_path / "executor-local"),
        "PYSPARK_PYTHON": sys.executable,
    }
    # As Spark does for executor pods: the executors' JVM options (on Java 17 the driver adds the
    # --add-opens flags Spark needs) become SPARK_JAVA_OPT_0, SPARK_JAVA_OPT_1, ...
    for i, option in enumerate(shlex.split(info["java_options"])):
        env[f"SPARK_JAVA_OPT_{i}"] = option
    if os.environ.get("JAVA_HOME"):
        env["JAVA_HOME"] = os.environ["JAVA_HOME"]
    log = (tmp_path / "executor.log").open("w")
    executor = subprocess.Popen(
        [sys.executable, "-I", str(SCRIPT), "executor"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        try:
            ids = wait_for_executor(driver, executor)
        except AssertionError as e:
            raise AssertionError(f"{e}\nexecutor log:\n{(tmp_path / 'executor.log').read_text()[-3000:]}") from None
        # No worker of the cluster's own: the entrypoint's executor is the only one, so it ran the job.
        assert ids == [EXECUTOR_ID]
        assert driver.ask("job") == {"sum": 5050}
    finally:
        # The entrypoint exec'd the JVM: the process started here is the executor itself.
        executor.send_signal(signal.SIGTERM)
        try:
            executor.wait(timeout=60)
        except subprocess.TimeoutExpired:
            executor.kill()
            executor.wait(timeout=30)
        log.close()
    assert "KubernetesExecutorBackend" in (tmp_path / "executor.log").read_text()
