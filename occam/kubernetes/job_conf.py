"""Pure builder of a Kubernetes batch job's Spark conf.

The job starts from the client-mode conf (:func:`occam.kubernetes.sparkconf.kubernetes_conf`) and turns it into
cluster mode: the driver is a pod Spark creates, sized like an executor, running as a service account that may
create the executor pods, and the executors are owned by it.
"""

from __future__ import annotations

from collections.abc import Mapping

from occam.contract import BATCH_JOB_LABEL, CACHE_DIR_ENV, CHECKPOINT_DIR_ENV, EXECUTORS_CONF, tensorflow_environment
from occam.kubernetes.job_objects import (
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

#: Client-mode properties that name the notebook pod; in cluster mode Spark fills them in for the driver pod.
_CLIENT_MODE_ONLY = ("spark.driver.host", "spark.driver.bindAddress")

#: Occam settings a batch driver takes from the submitter's environment when they point into the shared work
#: volume, which the driver pod mounts at the same path (anywhere else they would name the submitter's own disk).
SHARED_DIR_ENV = (CACHE_DIR_ENV, CHECKPOINT_DIR_ENV)


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
    :func:`~occam.kubernetes.job_objects.driver_pod_template`; spark-submit reads both and ships the executor
    template to the driver. RPC authentication works as in client mode
    (:mod:`occam.kubernetes.sparkconf`), except that the driver reads its key from the job's Secret,
    mounted in the driver pod at :data:`~occam.kubernetes.job_objects.AUTH_MOUNT`. ``environ``: the submitter's
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
            EXECUTORS_CONF: str(spec.n),
        }
    )
    for name, value in tensorflow_environment(spec.cores).items():
        conf[f"spark.kubernetes.driverEnv.{name}"] = value
    for name, value in driver_labels(spec, settings).items():
        conf[f"spark.kubernetes.driver.label.{name}"] = value
    # The job's executors belong to the job: the notebook's stop must not delete them.
    conf[f"spark.kubernetes.executor.label.{BATCH_JOB_LABEL}"] = "true"
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
