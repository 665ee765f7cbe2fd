"""The Spark driver inside this Python process: its JVM, its work directory, and the reaper watching both.

Every backend runs the driver here (client mode: the notebook kernel is the driver); backends differ in
the Spark conf they pass and in where executors run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from occam.errors import ClusterStartError, ConfigError
from occam.reaper import Reaper
from occam.sparkconf import driver_log4j_properties
from occam.validation import check_java

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@contextlib.contextmanager
def scoped_environ(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of a block, then put back what was there."""
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


def check_java_and_no_active_context() -> None:
    """Refuse to start a driver where Spark cannot run one: no Java, or a driver already running here."""
    check_java()
    from pyspark import SparkContext

    active = SparkContext._active_spark_context
    if active is not None:
        raise ConfigError(
            f"this Python process already runs a Spark context ({active.appName}, {active.master}); "
            "a cluster needs its own: stop the other one first (cluster.stop() or spark.stop())"
        )


class SparkDriver:
    """A driver JVM started for one cluster, with a private work directory removed when it stops.

    Spark's log goes to ``logs/driver.log`` in the work directory; only lines at ``log_level`` (see
    :data:`occam.config.LOG_LEVELS`; ``error`` by default) also reach the console, the student's notebook.
    """

    def __init__(self, name: str, log_level: str = "error") -> None:
        self.work_dir = tempfile.mkdtemp(prefix=f"{name}-")
        self.reaper = Reaper()
        self.reaper.remove_dir_on_exit(self.work_dir)
        for sub in ("local", "tmp", "conf", "logs"):
            os.makedirs(os.path.join(self.work_dir, sub))
        self.log_file = os.path.join(self.work_dir, "logs", "driver.log")
        # Found on the JVM's classpath through SPARK_CONF_DIR (set for the launch only).
        with open(os.path.join(self.work_dir, "conf", "log4j2.properties"), "w") as fh:
            fh.write(driver_log4j_properties(log_level, self.log_file))
        self._gateway: Any = None
        self._session: SparkSession | None = None

    @property
    def gateway_pid(self) -> int | None:
        return self._gateway.proc.pid if self._gateway is not None else None

    def start(
        self, conf: dict[str, str], environ: dict[str, str], private: dict[str, str] | None = None
    ) -> SparkSession:
        """Launch the JVM with ``conf`` and ``environ`` (the latter only for the launch) and return its session.

        ``private``: properties that must not appear on any command line (the RPC secret). The JVM is launched
        with ``conf`` as ``--conf`` arguments, which every local user can read; the private ones reach the
        SparkContext over the authenticated Py4J gateway instead.
        """
        from pyspark import SparkConf, SparkContext
        from pyspark.java_gateway import launch_gateway
        from pyspark.sql import SparkSession

        public_conf = SparkConf(loadDefaults=False).setAll(list(conf.items()))
        spark_conf = SparkConf(loadDefaults=False).setAll([*conf.items(), *(private or {}).items()])
        # SparkContext takes the executors' Python from PYSPARK_PYTHON when it is created.
        conf_dir = {"SPARK_CONF_DIR": os.path.join(self.work_dir, "conf")}
        with scoped_environ({"PYSPARK_PYTHON": sys.executable, **conf_dir, **environ}):
            self._gateway = launch_gateway(public_conf)
            self.reaper.watch_pid(self._gateway.proc.pid)
            sc = SparkContext(conf=spark_conf, gateway=self._gateway)
        self._session = SparkSession(sc)
        return self._session

    def raise_if_dead(self) -> None:
        if self._gateway is not None and self._gateway.proc.poll() is not None:
            raise ClusterStartError(f"the Spark driver JVM exited with status {self._gateway.proc.returncode}")
        if self._session is not None and self._session.sparkContext._jsc.sc().isStopped():
            raise ClusterStartError("Spark stopped the application: its executors kept failing to start")

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
            self.reaper.finish()
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
