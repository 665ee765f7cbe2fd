"""Pure builders of a batch job's Spark conf, its spark-submit command line and ``spark-defaults.conf`` text.

The embedded job uses the embedded backend's conf unchanged (:class:`~occam.backends.embedded.EmbeddedBackend`);
the Kubernetes job starts from the client-mode conf (:func:`occam.kubernetes.sparkconf.kubernetes_conf`) and
turns it into cluster mode: the driver is a pod Spark creates, sized like an executor, running as a service
account that may create the executor pods, and the executors are owned by it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from occam.batch.objects import (
    AUTH_MOUNT,
    DRIVER_CONTAINER_NAME,
    DRIVER_KEY,
    JOB_DIR,
    driver_labels,
    driver_pod_name,
)
from occam.kubernetes.objects import auth_secret_name, executor_memory_overhead_mib
from occam.kubernetes.settings import KubernetesSettings
from occam.kubernetes.shared import is_under
from occam.kubernetes.sparkconf import kubernetes_conf
from occam.spec import ClusterSpec

#: Set on every job Occam submits: the executors the job was given. ``start_cluster()`` in the job reads it.
EXECUTORS_CONF = "spark.occam.executors"

#: Client-mode properties that name the notebook pod; in cluster mode Spark fills them in for the driver pod.
_CLIENT_MODE_ONLY = ("spark.driver.host", "spark.driver.bindAddress")

#: Occam settings a batch driver takes from the submitter's environment when they point into the shared work
#: volume, which the driver pod mounts at the same path (anywhere else they would name the submitter's own disk).
SHARED_DIR_ENV = ("OCCAM_CACHE_DIR", "OCCAM_CHECKPOINT_DIR")

#: Properties whose value would be a secret. Occam's conf never holds one (secrets travel as files and
#: Secret references); ``spark-defaults`` text leaves these out even if a caller adds them.
SECRET_KEYS = ("spark.authenticate.secret",)


def embedded_submit_conf(spec: ClusterSpec, *, work_dir: str) -> dict[str, str]:
    """The embedded backend's conf for ``spec`` (``local-cluster``, client mode), marked as a submitted job."""
    from occam.backends.embedded import EmbeddedBackend

    conf = EmbeddedBackend(spec).spark_conf(work_dir)
    conf["spark.submit.deployMode"] = "client"
    conf[EXECUTORS_CONF] = str(spec.n)
    return conf


def kubernetes_submit_conf(
    spec: ClusterSpec,
    settings: KubernetesSettings,
    *,
    python: str,
    service_account: str,
    executor_template: str,
    driver_template: str,
    environ: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Every Spark property of a cluster-mode job on Kubernetes.

    ``python``: the interpreter inside the image. ``service_account``: the account the driver pod runs
    as; it creates the executor pods, so it needs the student's Role. ``executor_template`` and
    ``driver_template``: local files holding :func:`~occam.kubernetes.objects.executor_pod_template` and
    :func:`~occam.batch.objects.driver_pod_template`; spark-submit reads both and ships the executor
    template to the driver. RPC authentication works as in client mode
    (:mod:`occam.kubernetes.sparkconf`), except that the driver reads its key from the job's Secret,
    mounted in the driver pod at :data:`~occam.batch.objects.AUTH_MOUNT`. ``environ``: the submitter's
    environment, whose :data:`SHARED_DIR_ENV` on the shared work volume the driver inherits.
    """
    secret = auth_secret_name(spec)
    conf = kubernetes_conf(
        spec,
        settings,
        python=python,
        template_path=executor_template,
        secret_name=secret,
        driver_secret_file=f"{AUTH_MOUNT}/{DRIVER_KEY}",
    )
    for key in _CLIENT_MODE_ONLY:
        conf.pop(key, None)
    cores = str(spec.cores)
    conf.update(
        {
            "spark.submit.deployMode": "cluster",
            # Executors get an owner reference to the driver pod, so they go when it goes.
            "spark.kubernetes.driver.pod.name": driver_pod_name(spec),
            "spark.kubernetes.authenticate.driver.serviceAccountName": service_account,
            "spark.kubernetes.driver.podTemplateFile": driver_template,
            "spark.kubernetes.driver.podTemplateContainerName": DRIVER_CONTAINER_NAME,
            # The driver pod is sized like an executor (no GPU), which the quota check counts.
            "spark.driver.cores": cores,
            "spark.kubernetes.driver.request.cores": cores,
            "spark.kubernetes.driver.limit.cores": cores,
            "spark.driver.memory": spec.memory,
            "spark.driver.memoryOverhead": f"{executor_memory_overhead_mib(spec)}m",
            f"spark.kubernetes.driver.secrets.{secret}": AUTH_MOUNT,
            # occam submit follows the driver pod itself (with a timeout, or not at all with --detach).
            "spark.kubernetes.submission.waitAppCompletion": "false",
            "spark.kubernetes.driverEnv.OMP_NUM_THREADS": cores,
            EXECUTORS_CONF: str(spec.n),
        }
    )
    for name, value in driver_labels(spec, settings).items():
        conf[f"spark.kubernetes.driver.label.{name}"] = value
    for name, value in inherited_driver_env(settings, environ or {}).items():
        conf[f"spark.kubernetes.driverEnv.{name}"] = value
    return conf


def inherited_driver_env(settings: KubernetesSettings, environ: Mapping[str, str]) -> dict[str, str]:
    """The :data:`SHARED_DIR_ENV` variables of ``environ`` that lie on the shared work volume."""
    if settings.shared_path is None:
        return {}
    return {
        name: environ[name]
        for name in SHARED_DIR_ENV
        if environ.get(name) and is_under(environ[name], settings.shared_path)
    }


def kubernetes_app_resource(file_name: str) -> str:
    """The job's file as spark-submit names it for cluster mode: a path inside the driver pod."""
    return f"local://{JOB_DIR}/{file_name}"


def spark_submit_argv(
    spark_submit: str, conf: Mapping[str, str], app_resource: str, args: Sequence[str] = ()
) -> list[str]:
    """The spark-submit command line: master and deploy mode from ``conf``, every property as ``--conf``."""
    argv = [spark_submit, "--master", conf["spark.master"], "--deploy-mode", conf["spark.submit.deployMode"]]
    for key in sorted(conf):
        if key not in ("spark.master", "spark.submit.deployMode"):
            argv += ["--conf", f"{key}={conf[key]}"]
    return [*argv, app_resource, *args]


def spark_defaults_text(conf: Mapping[str, str], header: Sequence[str] = ()) -> str:
    """``conf`` as ``spark-defaults.conf`` lines (key, spaces, value), sorted, after ``# ``-comment lines.

    Keys in :data:`SECRET_KEYS` are never written.
    """
    lines = [f"# {line}" if line else "#" for line in header]
    keys = sorted(k for k in conf if k not in SECRET_KEYS)
    width = max((len(k) for k in keys), default=0)
    lines += [f"{key.ljust(width)}  {conf[key]}" for key in keys]
    return "\n".join(lines) + "\n"


def log4j_properties(level: str = "warn") -> str:
    """A log4j2 config for spark-submit's JVM: Spark's own log at ``level`` on stderr, the job's output untouched."""
    return (
        f"rootLogger.level = {level}\n"
        "rootLogger.appenderRef.stderr.ref = console\n"
        "appender.console.type = Console\n"
        "appender.console.name = console\n"
        "appender.console.target = SYSTEM_ERR\n"
        "appender.console.layout.type = PatternLayout\n"
        "appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n%ex\n"
        # Warnings that say nothing about the job: no native Hadoop library; spark.local.dir left to the
        # cluster manager (the embedded conf sets it for the driver, which is what matters).
        "logger.hadoop.name = org.apache.hadoop.util.NativeCodeLoader\n"
        "logger.hadoop.level = error\n"
        "logger.sparkconf.name = org.apache.spark.SparkConf\n"
        "logger.sparkconf.level = error\n"
    )
