"""The submitted backend: ``start_cluster()`` inside a job launched by spark-submit attaches to its session.

spark-submit starts the driver JVM first and runs the script with ``PYSPARK_GATEWAY_PORT`` pointing at
it; a second driver cannot start in that process. So there this backend takes over whatever backend was
asked for: :func:`occam.start_cluster` returns a :class:`~occam.Cluster` over the existing SparkContext,
sized by the submission (``occam submit --executors``, or the job's Spark conf), and waits for its executors
as usual. Questions that depend on where the executors run are answered by the backend that submitted the
job, which its conf names (:func:`occam.backends.backend_of`). The same script thus runs
in a notebook and as a batch job.

``cluster.stop()`` in a job marks that Cluster stopped but leaves the SparkContext running: it belongs to
the job, and code after the ``with`` block (saving results, one more Spark query) must still work. A
later ``start_cluster()`` in the same script attaches again. The context is stopped when the script's
interpreter exits, before spark-submit's JVM shuts down: otherwise the JVM's shutdown races the
cluster manager, which relaunches executors into a dying JVM and fills the log with errors.
"""

from __future__ import annotations

import atexit
import os
import re
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING

from occam import config
from occam.backends.base import Backend
from occam.contract import EXECUTORS_CONF
from occam.errors import ClusterStartError, ConfigError
from occam.spec import ClusterSpec, make_spec

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

GATEWAY_ENV = "PYSPARK_GATEWAY_PORT"

_LOCAL_CLUSTER_RE = re.compile(r"^local-cluster\[\s*(\d+)\s*,")


def in_submitted_job(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this Python process was started by spark-submit (or the pyspark shell): its JVM already runs."""
    env = os.environ if environ is None else environ
    return bool(env.get(GATEWAY_ENV))


def submitted_executors(conf: Mapping[str, str]) -> int | None:
    """The executors a submission asked for: Occam's own mark, ``local-cluster[n,...]``, or ``spark.executor.instances``."""
    for raw in (conf.get(EXECUTORS_CONF), conf.get("spark.executor.instances")):
        if raw and raw.strip().isdigit():
            return int(raw)
    match = _LOCAL_CLUSTER_RE.match(conf.get("spark.master", ""))
    return int(match.group(1)) if match else None


def submitted_spec(conf: Mapping[str, str], *, requested_n: int, timeout: float) -> ClusterSpec:
    """The :class:`ClusterSpec` of a submitted job's session, from its Spark conf (pure).

    ``requested_n`` (the script's ``start_cluster(n=...)``) counts only where the conf does not say.
    """
    n = submitted_executors(conf)
    gpu_amount = conf.get("spark.executor.resource.gpu.amount", "0").strip()
    return make_spec(
        requested_n if n is None else n,
        cores=int(conf.get("spark.executor.cores", "1")),
        memory=conf.get("spark.executor.memory", "1g"),
        gpu=gpu_amount not in ("", "0"),
        timeout=timeout,
        name=conf.get("spark.app.name") or None,
    )


def mismatch_warning(spec: ClusterSpec, *, n: int | None, gpu: bool) -> str | None:
    """A sentence when the script asked for another size than the job was submitted with; else None.

    ``n=None`` (the script left it out) matches any size.
    """
    asked = []
    if n is not None and n != spec.n:
        asked.append(f"n={n}")
    if gpu != spec.gpu:
        asked.append(f"gpu={gpu}")
    if not asked:
        return None
    return (
        f"start_cluster({', '.join(asked)}) inside a submitted job: the job was submitted with "
        f"{spec.n} executor(s), gpu={spec.gpu}, and uses those; size a batch job with occam submit "
        "--executors/--gpu"
    )


def _stop_context_at_exit() -> None:
    from pyspark import SparkContext

    context = SparkContext._active_spark_context
    if context is not None:
        context.stop()


def _job_session() -> SparkSession:
    from pyspark.sql import SparkSession

    return SparkSession.builder.getOrCreate()


class SubmittedBackend(Backend):
    """The executors spark-submit started for this job; Occam neither starts nor stops them."""

    name = "submitted"
    priority = 100
    takes_over = True

    @classmethod
    def detect(cls, environ: Mapping[str, str]) -> bool:
        return in_submitted_job(environ)

    @classmethod
    def request(
        cls,
        n: int | None = None,
        *,
        gpu: bool = False,
        cores: int | None = None,
        memory: str | int | None = None,
        timeout: float | None = None,
        name: str | None = None,
    ) -> ClusterSpec:
        """The job's executors as submitted; a different ``n`` or ``gpu`` in the script only warns."""
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise ConfigError(f"n={n!r}: the number of executors must be a whole number, at least 1")
        conf = dict(_job_session().sparkContext.getConf().getAll())
        requested = config.get("n", n)
        spec = submitted_spec(conf, requested_n=requested, timeout=config.get("timeout", timeout))
        message = mismatch_warning(spec, n=n, gpu=gpu)
        if message:
            warnings.warn(message, UserWarning, stacklevel=3)
        atexit.unregister(_stop_context_at_exit)  # once, however often the script attaches
        atexit.register(_stop_context_at_exit)
        return spec

    def __init__(self, spec: ClusterSpec) -> None:
        super().__init__(spec)
        self.session = _job_session()

    def check(self) -> None:
        pass

    def launch(self) -> SparkSession:
        return self.session

    def raise_if_failed(self) -> None:
        if self.session.sparkContext._jsc.sc().isStopped():
            raise ClusterStartError("the job's SparkContext was stopped while waiting for its executors")

    def diagnostics(self) -> str:
        master = self.session.sparkContext.master
        return f"the executors are started by spark-submit's cluster manager ({master}); its log is in the job's output"

    def describe(self) -> dict[str, str]:
        return {"cluster manager": f"spark-submit ({self.session.sparkContext.master})"}

    def stop(self) -> None:
        """Leave the SparkContext to spark-submit, which stops it when the script ends."""
