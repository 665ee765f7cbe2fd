"""The embedded backend: a real Spark cluster on this machine, each executor its own JVM.

It runs Spark's ``local-cluster`` mode (a standalone master and workers inside the driver JVM,
executor JVMs as child processes), so code written against it runs unchanged on Spark standalone
or Kubernetes. Every file the cluster writes lives in one work directory, and a reaper process
(:mod:`occam.reaper`) removes it and any leftover process if the driver dies without stopping.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from importlib import resources
from typing import TYPE_CHECKING, Any

from occam import resources as machine
from occam.backends.base import Backend
from occam.errors import ClusterStartError, ConfigError
from occam.reaper import Reaper
from occam.sparkconf import embedded_conf

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

LOG_TAIL_LINES = 25


def gpu_discovery_script() -> str:
    return str(resources.files("occam") / "scripts" / "get_gpus_resources.sh")


@contextlib.contextmanager
def scoped_environ(values: dict[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def make_spark_home(work_dir: str) -> str:
    """A SPARK_HOME inside ``work_dir`` that links to pip's pyspark.

    Spark's workers write executor logs under ``$SPARK_HOME/work``; this keeps them inside the
    cluster's work directory instead of the Python environment.
    """
    import pyspark

    source = os.path.dirname(pyspark.__file__)
    home = os.path.join(work_dir, "spark-home")
    os.makedirs(home)
    for entry in os.listdir(source):
        if entry != "work":
            os.symlink(os.path.join(source, entry), os.path.join(home, entry))
    return home


class EmbeddedBackend(Backend):
    name = "embedded"
    priority = 0

    def __init__(self, spec: Any) -> None:
        super().__init__(spec)
        self.work_dir: str | None = None
        self._reaper: Reaper | None = None
        self._gateway: Any = None
        self._session: SparkSession | None = None

    @classmethod
    def detect(cls, environ: Mapping[str, str]) -> bool:
        return True

    def check(self) -> None:
        from occam.validation import check_fits_machine

        check_fits_machine(self.spec, machine.detect())
        if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
            raise ConfigError(
                "Spark needs a Java runtime and none was found; install Java 17 "
                "(e.g. 'apt-get install openjdk-17-jre-headless') or set JAVA_HOME"
            )
        from pyspark import SparkContext

        active = SparkContext._active_spark_context
        if active is not None:
            raise ConfigError(
                f"this Python process already runs a Spark context ({active.appName}, {active.master}); "
                "an embedded cluster needs its own: stop the other one first (cluster.stop() or spark.stop())"
            )

    def spark_conf(self) -> dict[str, str]:
        assert self.work_dir is not None
        conf = embedded_conf(self.spec, python=sys.executable, work_dir=self.work_dir)
        if self.spec.gpu:
            script = gpu_discovery_script()
            conf.update(
                {
                    "spark.executor.resource.gpu.discoveryScript": script,
                    "spark.worker.resource.gpu.amount": "1",
                    "spark.worker.resource.gpu.discoveryScript": script,
                }
            )
        return conf

    def launch(self) -> SparkSession:
        from pyspark import SparkConf, SparkContext
        from pyspark.java_gateway import launch_gateway
        from pyspark.sql import SparkSession

        self.work_dir = tempfile.mkdtemp(prefix=f"{self.spec.name}-")
        self._reaper = Reaper()
        self._reaper.remove_dir_on_exit(self.work_dir)
        for sub in ("local", "tmp"):
            os.makedirs(os.path.join(self.work_dir, sub))
        spark_home = make_spark_home(self.work_dir)

        conf = SparkConf(loadDefaults=False).setAll(list(self.spark_conf().items()))
        # The JVM reads SPARK_HOME at launch; SparkContext reads PYSPARK_PYTHON (the executors' Python)
        # when it is created. Both only for this start, so the user's environment is left as it was.
        launch_env = {
            "SPARK_HOME": spark_home,
            "PYSPARK_PYTHON": sys.executable,
            "SPARK_LOCAL_IP": "127.0.0.1",
        }
        with scoped_environ(launch_env):
            self._gateway = launch_gateway(conf)
            self._reaper.watch_pid(self._gateway.proc.pid)
            sc = SparkContext(conf=conf, gateway=self._gateway)
        sc.setLogLevel("ERROR")
        self._session = SparkSession(sc)
        return self._session

    def raise_if_failed(self) -> None:
        if self._gateway is not None and self._gateway.proc.poll() is not None:
            raise ClusterStartError(f"the Spark driver JVM exited with status {self._gateway.proc.returncode}")
        if self._session is not None and self._session.sparkContext._jsc.sc().isStopped():
            raise ClusterStartError("Spark stopped the application: its executors kept failing to start")

    def diagnostics(self) -> str:
        if self.work_dir is None:
            return ""
        parts = []
        pattern = os.path.join(self.work_dir, "spark-home", "work", "*", "*", "stderr")
        for path in sorted(glob.glob(pattern)):
            executor = os.path.basename(os.path.dirname(path))
            with open(path, errors="replace") as fh:
                tail = fh.readlines()[-LOG_TAIL_LINES:]
            parts.append(f"--- executor {executor} stderr (last {len(tail)} lines) ---\n" + "".join(tail))
        return "\n".join(parts) or f"no executor has written a log yet under {self.work_dir}"

    def describe(self) -> dict[str, str]:
        info = {"cluster manager": f"Spark local-cluster ({self.spec.n} executor JVMs on this machine)"}
        if self.work_dir:
            info["work dir"] = self.work_dir
        return info

    def stop(self) -> None:
        from pyspark import SparkContext

        try:
            if self._session is not None:
                self._session.stop()
        finally:
            self._session = None
            self._shutdown_gateway()
            SparkContext._gateway = None
            SparkContext._jvm = None
            if self._reaper is not None:
                self._reaper.finish()
                self._reaper = None
            if self.work_dir is not None:
                shutil.rmtree(self.work_dir, ignore_errors=True)

    def _shutdown_gateway(self) -> None:
        gateway, self._gateway = self._gateway, None
        if gateway is None:
            return
        proc = gateway.proc
        with contextlib.suppress(Exception):
            gateway.shutdown()
        # The JVM exits when its stdin closes (PythonGatewayServer watches it).
        if proc.stdin is not None and not proc.stdin.closed:
            proc.stdin.close()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
