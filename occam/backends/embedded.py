"""The embedded backend: a real Spark cluster on this machine, each executor its own JVM.

It runs Spark's ``local-cluster`` mode (a standalone master and workers inside the driver JVM,
executor JVMs as child processes), so code written against it runs unchanged on Spark standalone
or Kubernetes. Every file the cluster writes lives in one work directory, and a reaper process
(:mod:`occam.reaper`) removes it and any leftover process if the driver dies without stopping.
"""

from __future__ import annotations

import glob
import os
import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING

from occam import resources as machine
from occam.backends.base import Backend
from occam.backends.driver import SparkDriver, check_java_and_no_active_context
from occam.backends.embedded_jobs import embedded_conf_text, run_embedded
from occam.backends.local import embedded_spark_conf, make_spark_home
from occam.contract import EMBEDDED_BACKEND
from occam.errors import ConfigError
from occam.sparkconf import AUTH_SECRET_CONF
from occam.spec import ClusterSpec
from occam.validation import check_fits_machine

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from occam.batch.job import Submission

LOG_TAIL_LINES = 25


class EmbeddedBackend(Backend):
    name = EMBEDDED_BACKEND
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
        return embedded_spark_conf(self.spec, work_dir)

    def launch(self) -> SparkSession:
        self.driver = SparkDriver(self.spec.name, self.spec.log_level)
        work_dir = self.driver.work_dir
        # The JVM reads SPARK_HOME at launch: executor logs then land in the cluster's work dir.
        environ = {"SPARK_HOME": make_spark_home(work_dir), "SPARK_LOCAL_IP": "127.0.0.1"}
        private = {AUTH_SECRET_CONF: secrets.token_urlsafe(32)}
        return self.driver.start(self.spark_conf(work_dir), environ, private)

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

    # -- batch jobs: spark-submit runs the job's driver here, its executors on this machine -------------

    @classmethod
    def submit_job(cls, submission: Submission) -> int:
        if submission.detach:
            raise ConfigError("--detach works on Kubernetes only: an embedded job lives as long as occam submit")
        return run_embedded(submission.job, submission.spec)

    @classmethod
    def job_conf_text(
        cls, spec: ClusterSpec, *, service_account: str | None, template_dir: str, environ: Mapping[str, str]
    ) -> str:
        return embedded_conf_text(spec)
