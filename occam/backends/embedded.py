"""The embedded backend: a real Spark cluster on this machine, each executor its own JVM.

It runs Spark's ``local-cluster`` mode (a standalone master and workers inside the driver JVM,
executor JVMs as child processes), so code written against it runs unchanged on Spark standalone
or Kubernetes. Every file the cluster writes lives in one work directory, and a reaper process
(:mod:`occam.reaper`) removes it and any leftover process if the driver dies without stopping.
"""

from __future__ import annotations

import glob
import os
import sys
from collections.abc import Mapping
from importlib import resources
from typing import TYPE_CHECKING

from occam import resources as machine
from occam.backends.base import Backend
from occam.backends.driver import SparkDriver, check_java_and_no_active_context
from occam.errors import ConfigError
from occam.sparkconf import embedded_conf
from occam.spec import ClusterSpec
from occam.validation import check_fits_machine

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

LOG_TAIL_LINES = 25


def gpu_discovery_script() -> str:
    return str(resources.files("occam") / "scripts" / "get_gpus_resources.sh")


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

    def __init__(self, spec: ClusterSpec) -> None:
        super().__init__(spec)
        self.driver: SparkDriver | None = None

    @classmethod
    def detect(cls, environ: Mapping[str, str]) -> bool:
        return True

    def check(self) -> None:
        check_fits_machine(self.spec, machine.detect())
        check_java_and_no_active_context()

    def spark_conf(self, work_dir: str) -> dict[str, str]:
        conf = embedded_conf(self.spec, python=sys.executable, work_dir=work_dir)
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
        self.driver = SparkDriver(self.spec.name)
        work_dir = self.driver.work_dir
        # The JVM reads SPARK_HOME at launch: executor logs then land in the cluster's work dir.
        environ = {"SPARK_HOME": make_spark_home(work_dir), "SPARK_LOCAL_IP": "127.0.0.1"}
        return self.driver.start(self.spark_conf(work_dir), environ)

    def check_scale(self, n: int) -> None:
        # local-cluster starts one worker per executor; a worker runs one executor of this size.
        if n > self.spec.n:
            raise ConfigError(
                f"scale(n={n}): this embedded cluster was started with {self.spec.n} executor slots and "
                f"cannot grow past them; stop it and start_cluster(n={n}) instead"
            )

    def raise_if_failed(self) -> None:
        if self.driver is not None:
            self.driver.raise_if_dead()

    def diagnostics(self) -> str:
        if self.driver is None:
            return ""
        parts = []
        pattern = os.path.join(self.driver.work_dir, "spark-home", "work", "*", "*", "stderr")
        for path in sorted(glob.glob(pattern)):
            executor = os.path.basename(os.path.dirname(path))
            with open(path, errors="replace") as fh:
                tail = fh.readlines()[-LOG_TAIL_LINES:]
            parts.append(f"--- executor {executor} stderr (last {len(tail)} lines) ---\n" + "".join(tail))
        return "\n".join(parts) or f"no executor has written a log yet under {self.driver.work_dir}"

    def describe(self) -> dict[str, str]:
        info = {"cluster manager": f"Spark local-cluster ({self.spec.n} executor JVMs on this machine)"}
        if self.driver is not None:
            info["work dir"] = self.driver.work_dir
        return info

    def stop(self) -> None:
        if self.driver is not None:
            self.driver.stop()
