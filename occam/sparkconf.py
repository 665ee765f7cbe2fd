"""Pure builders of Spark configuration: a spec and a few facts in, a dict of Spark properties out."""

from __future__ import annotations

from occam.spec import ClusterSpec


def common_conf(spec: ClusterSpec, *, python: str) -> dict[str, str]:
    """Properties every backend sets, whatever the cluster manager."""
    return {
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


def embedded_conf(spec: ClusterSpec, *, python: str, work_dir: str) -> dict[str, str]:
    """Spark conf of the embedded cluster: ``local-cluster`` mode, each executor its own JVM on this machine.

    Everything the cluster writes goes under ``work_dir`` so that one removal cleans it up.
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
            # Executors share this machine's cores: keep TensorFlow from starting a thread per core in each.
            "spark.executorEnv.OMP_NUM_THREADS": str(spec.cores),
            "spark.executorEnv.TF_NUM_INTRAOP_THREADS": str(spec.cores),
            "spark.executorEnv.TF_NUM_INTEROP_THREADS": "1",
            "spark.executorEnv.TF_CPP_MIN_LOG_LEVEL": "2",
        }
    )
    if spec.gpu:
        conf.update(gpu_conf(spec))
    return conf


def gpu_conf(spec: ClusterSpec, *, discovery_script: str | None = None) -> dict[str, str]:
    """Spark's GPU scheduling: one GPU per executor, one per task, found by a discovery script."""
    conf = {
        "spark.executor.resource.gpu.amount": "1",
        "spark.task.resource.gpu.amount": "1",
        "spark.executor.resource.gpu.vendor": "nvidia.com",
    }
    if discovery_script:
        conf["spark.executor.resource.gpu.discoveryScript"] = discovery_script
    return conf
