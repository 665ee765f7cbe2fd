"""Pure builders of Spark configuration: a spec and a few facts in, a dict of Spark properties out."""

from __future__ import annotations

from importlib import resources

from occam.contract import BACKEND_CONF, EMBEDDED_BACKEND, GPU_VENDOR, tensorflow_environment
from occam.spec import ClusterSpec

#: The embedded cluster's RPC secret, random per cluster. Never in a conf written to a command line or a file
#: others can read: occam.backends.driver passes it over the Py4J gateway, occam submit in a 0600 properties file.
#: Spark's local-cluster master hands it to executors in their environment.
AUTH_SECRET_CONF = "spark.authenticate.secret"


def common_conf(spec: ClusterSpec, *, python: str) -> dict[str, str]:
    """Properties every backend sets, whatever the cluster manager (each backend adds its name, :func:`named`)."""
    conf = {
        "spark.app.name": spec.name,
        "spark.executor.cores": str(spec.cores),
        # One task slot per executor: a Horovod rank owns its executor's cores, and fit places one rank
        # on each executor.
        "spark.task.cpus": str(spec.cores),
        "spark.executor.memory": spec.memory,
        "spark.pyspark.python": python,
        "spark.pyspark.driver.python": python,
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.session.timeZone": "UTC",
    }
    # Executors share their machine's (or node's) cores: keep TensorFlow from starting a thread per core in each.
    for name, value in tensorflow_environment(spec.cores).items():
        conf[f"spark.executorEnv.{name}"] = value
    return conf


def named(conf: dict[str, str], backend: str) -> dict[str, str]:
    """``conf`` marked as made by ``backend`` (:data:`~occam.contract.BACKEND_CONF`), so that code holding only
    the session can ask that backend what depends on it (:func:`occam.backends.backend_of`)."""
    conf[BACKEND_CONF] = backend
    return conf


def packaged_gpu_discovery_script() -> str:
    """The GPU discovery script this package ships (``occam/scripts/get_gpus_resources.sh``)."""
    return str(resources.files("occam") / "scripts" / "get_gpus_resources.sh")


def embedded_conf(spec: ClusterSpec, *, python: str, work_dir: str, gpu_discovery_script: str) -> dict[str, str]:
    """Spark conf of the embedded cluster: ``local-cluster`` mode, each executor its own JVM on this machine.

    Everything the cluster writes goes under ``work_dir`` so that one removal cleans it up. With ``spec.gpu``
    each worker and executor finds its GPU with ``gpu_discovery_script``.
    """
    mib = spec.memory_bytes >> 20
    conf = common_conf(spec, python=python)
    conf.update(
        {
            "spark.master": f"local-cluster[{spec.n},{spec.cores},{mib}]",
            "spark.driver.host": "127.0.0.1",
            "spark.driver.bindAddress": "127.0.0.1",
            "spark.local.dir": f"{work_dir}/local",
            "spark.sql.warehouse.dir": f"{work_dir}/warehouse",
            "spark.driver.extraJavaOptions": f"-Djava.io.tmpdir={work_dir}/tmp -Dderby.system.home={work_dir}",
            "spark.executor.extraJavaOptions": f"-Djava.io.tmpdir={work_dir}/tmp",
            "spark.executorEnv.TMPDIR": f"{work_dir}/tmp",
            # Other local users reach the driver's, master's and workers' ports: authenticate every connection
            # (the secret is passed privately, see AUTH_SECRET_CONF) and encrypt it.
            "spark.authenticate": "true",
            "spark.network.crypto.enabled": "true",
        }
    )
    if spec.gpu:
        conf.update(gpu_conf(spec, discovery_script=gpu_discovery_script))
        conf["spark.worker.resource.gpu.amount"] = "1"
        conf["spark.worker.resource.gpu.discoveryScript"] = gpu_discovery_script
    return named(conf, EMBEDDED_BACKEND)


def gpu_conf(spec: ClusterSpec, *, discovery_script: str | None = None) -> dict[str, str]:
    """Spark's GPU scheduling: one GPU per executor, one per task, found by a discovery script."""
    conf = {
        "spark.executor.resource.gpu.amount": "1",
        "spark.task.resource.gpu.amount": "1",
        "spark.executor.resource.gpu.vendor": GPU_VENDOR,
    }
    if discovery_script:
        conf["spark.executor.resource.gpu.discoveryScript"] = discovery_script
    return conf


#: Spark's console threshold for each of :data:`occam.config.LOG_LEVELS`: its INFO lines (hundreds at start-up)
#: only at ``debug``.
SPARK_CONSOLE_LEVELS = {"error": "error", "warn": "warn", "info": "warn", "debug": "info"}


def driver_log4j_properties(level: str, log_file: str) -> str:
    """log4j2 config of a cluster's driver JVM: Spark's warnings (and worse) to ``log_file``, the cluster's log,
    and only what ``level`` asks for (default ``error``) to the console, which is the student's notebook."""
    console = SPARK_CONSOLE_LEVELS[level]
    root = "info" if console == "info" else "warn"
    return (
        f"rootLogger.level = {root}\n"
        "rootLogger.appenderRef.console.ref = console\n"
        f"rootLogger.appenderRef.console.level = {console}\n"
        "rootLogger.appenderRef.file.ref = file\n"
        "appender.console.type = Console\n"
        "appender.console.name = console\n"
        "appender.console.target = SYSTEM_ERR\n"
        "appender.console.layout.type = PatternLayout\n"
        "appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n%ex\n"
        "appender.file.type = File\n"
        "appender.file.name = file\n"
        f"appender.file.fileName = {log_file}\n"
        "appender.file.layout.type = PatternLayout\n"
        "appender.file.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n%ex\n"
        # As in Spark's own defaults: the web server's and Parquet's chatter stays out even of the file.
        "logger.jetty.name = org.sparkproject.jetty\n"
        "logger.jetty.level = warn\n"
        "logger.parquet.name = org.apache.parquet\n"
        "logger.parquet.level = error\n"
    )
