"""Run a batch job on the embedded cluster: spark-submit with ``local-cluster`` on this machine.

Python apps cannot run in cluster deploy mode on a local or standalone master, so spark-submit runs in
client mode here: its JVM is the driver and runs the script as a child process. Everything the job
writes goes to a private work directory (with a ``SPARK_HOME`` of links, so executor logs land there
too), and a reaper (:mod:`occam.reaper`) kills the job's processes and removes the directory if this
process dies, even by SIGKILL.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import tempfile

from occam import resources as machine
from occam.backends.local import embedded_spark_conf, make_spark_home
from occam.batch.conf import log4j_properties, spark_defaults_text, spark_submit_argv, write_private_properties
from occam.batch.job import Job
from occam.config import TF_CPP_LEVELS
from occam.contract import EXECUTORS_CONF
from occam.errors import ConfigError
from occam.reaper import Reaper
from occam.sparkconf import AUTH_SECRET_CONF, SPARK_CONSOLE_LEVELS
from occam.spec import ClusterSpec
from occam.validation import check_fits_machine, check_java

#: How long spark-submit gets to stop after Ctrl-C before it is killed.
STOP_GRACE_SECONDS = 20.0


def embedded_submit_conf(spec: ClusterSpec, *, work_dir: str) -> dict[str, str]:
    """The embedded backend's conf for ``spec`` (``local-cluster``, client mode), marked as a submitted job."""
    conf = embedded_spark_conf(spec, work_dir)
    conf["spark.submit.deployMode"] = "client"
    conf[EXECUTORS_CONF] = str(spec.n)
    return conf


def embedded_conf_text(spec: ClusterSpec) -> str:
    """``spark-defaults.conf`` text of an embedded job, without the per-job work dir occam submit adds."""
    marker = "/OCCAM-WORK-DIR"
    conf = {k: v for k, v in embedded_submit_conf(spec, work_dir=marker).items() if marker not in v}
    header = [
        f"Spark properties of an embedded Occam job ({spec.n} executors), for spark-submit --properties-file.",
        "occam submit also gives each job a private work dir (spark.local.dir, java.io.tmpdir) and a",
        "reaper that cleans up if it dies; with plain spark-submit Spark uses the system temp dir.",
        f"RPC is authenticated: put {AUTH_SECRET_CONF} <random text> in a private properties file (mode 0600),",
        "never on the command line (occam submit makes one per job).",
    ]
    return spark_defaults_text(conf, header)


def run_embedded(job: Job, spec: ClusterSpec) -> int:
    """Run ``job`` on ``spec.n`` executors of this machine; its output goes to this process's stdout/stderr.

    What Spark's JVM and TensorFlow print besides the job's own output follows ``spec.log_level``
    (``OCCAM_LOG_LEVEL``, ``occam submit --verbose``): by default errors only.

    Returns the job's exit status (the script's, as spark-submit reports it). Checks the request first,
    like ``start_cluster``; a missing script or module raises :class:`~occam.errors.ConfigError`.
    """
    check_fits_machine(spec, machine.detect())
    check_java("spark-submit")
    source = job.source()  # reads the script now: a missing one is an error before anything starts
    if job.module is not None:
        _check_importable(job.module)
    work_dir = tempfile.mkdtemp(prefix=f"{spec.name}-")
    reaper = Reaper()
    try:
        reaper.remove_dir_on_exit(work_dir)
        for sub in ("local", "tmp", "conf", "job"):
            os.makedirs(os.path.join(work_dir, sub))
        with open(os.path.join(work_dir, "conf", "log4j2.properties"), "w") as fh:
            fh.write(log4j_properties(SPARK_CONSOLE_LEVELS[spec.log_level]))
        if job.script is not None:
            app = os.path.abspath(job.script)
        else:
            app = os.path.join(work_dir, "job", job.file_name)
            with open(app, "w") as fh:
                fh.write(source)
        spark_home = make_spark_home(work_dir)
        # The RPC secret reaches spark-submit's driver JVM through a private file, never its command line.
        private = write_private_properties(
            os.path.join(work_dir, "conf", "private.properties"), {AUTH_SECRET_CONF: secrets.token_urlsafe(32)}
        )
        argv = spark_submit_argv(
            os.path.join(spark_home, "bin", "spark-submit"),
            embedded_submit_conf(spec, work_dir=work_dir),
            app,
            job.args,
            properties_file=private,
        )
        env = {
            **os.environ,
            "SPARK_HOME": spark_home,
            "SPARK_CONF_DIR": os.path.join(work_dir, "conf"),
            "SPARK_LOCAL_IP": "127.0.0.1",
            "PYSPARK_PYTHON": sys.executable,
            "PYSPARK_DRIVER_PYTHON": sys.executable,
            # The job's driver runs TensorFlow too: its C++ start-up notices follow the log level.
            "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL") or TF_CPP_LEVELS[spec.log_level],
        }
        # Its own session, so that Ctrl-C here reaches the job only through stop() below, in order.
        proc = subprocess.Popen(argv, env=env, start_new_session=True)
        reaper.watch_pid(proc.pid)
        try:
            return proc.wait()
        except KeyboardInterrupt:
            _interrupt(proc)
            return 130
    finally:
        reaper.finish()


def _interrupt(proc: subprocess.Popen[bytes]) -> None:
    print("occam: interrupted; stopping the job", file=sys.stderr)
    try:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=STOP_GRACE_SECONDS)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass  # the reaper kills whatever is left


def _check_importable(module: str) -> None:
    import importlib.util

    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        found = None
    if found is None:
        raise ConfigError(
            f"-m {module}: no such module in this Python environment ({sys.executable}); "
            "check the name, or pass a script path instead"
        )
