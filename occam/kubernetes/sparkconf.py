"""Spark conf of a client-mode cluster on Kubernetes: the notebook pod is the driver, executors are pods.

How the Spark RPC secret reaches the executors (checked against Spark 3.5's ``SecurityManager``,
``BasicExecutorFeatureStep`` and ``KubernetesExecutorBackend``):

* On Kubernetes the driver ignores ``spark.authenticate.secret``: unless secret files are configured
  it generates its own random secret and puts it in every executor pod spec as a plain
  ``_SPARK_AUTH_SECRET`` value, readable by anyone who can read pods in the namespace. So a
  ``secretKeyRef`` for ``_SPARK_AUTH_SECRET`` alone cannot work: it would not match the driver's key.
* ``spark.authenticate.secret.driver.file`` makes the driver read its key from a file, the base64
  encoding of the file's bytes. Spark insists that ``spark.authenticate.secret.executor.file`` is then
  set too, and setting it stops Spark writing the plain ``_SPARK_AUTH_SECRET`` into pod specs.
* Executors look for ``_SPARK_AUTH_SECRET`` in their environment before any file, both in the bootstrap
  connection that fetches the driver's conf and in their Spark environment. The bootstrap connection
  cannot use a secret file at all: it only knows the startup properties, and Spark reads secret files
  only when ``spark.master`` (not among them) is a ``k8s://`` URL.

So the driver reads a private file holding the secret's raw bytes
(:func:`occam.kubernetes.objects.driver_secret_file_bytes`), and the executors get the same secret,
base64-encoded, from the cluster's Secret through ``spark.kubernetes.executor.secretKeyRef``; the pod
specs then hold only a reference. The executor secret file is never read, and points at
:data:`UNUSED_EXECUTOR_SECRET_FILE` so that a Spark version that did read it would fail loudly
rather than use a different key.
"""

from __future__ import annotations

from occam.contract import KUBERNETES_BACKEND, SHARED_PATH_CONF
from occam.errors import ConfigError
from occam.kubernetes.objects import (
    AUTH_SECRET_KEY,
    EXECUTOR_CONTAINER_NAME,
    cluster_labels,
    executor_image,
    executor_memory_overhead_mib,
    resource_name,
)
from occam.kubernetes.settings import KubernetesSettings
from occam.sparkconf import common_conf, gpu_conf, named
from occam.spec import ClusterSpec

#: Where executor images install Occam's GPU discovery script (a copy of ``occam/scripts/get_gpus_resources.sh``,
#: which honours ``CUDA_VISIBLE_DEVICES`` as the NVIDIA device plugin sets it). Images must put it here.
EXECUTOR_GPU_DISCOVERY_SCRIPT = "/opt/occam/get_gpus_resources.sh"

#: ``spark.authenticate.secret.executor.file``: required by Spark beside the driver file, never read.
UNUSED_EXECUTOR_SECRET_FILE = "/dev/null"

#: The environment variable Spark executors read their RPC secret from.
AUTH_SECRET_ENV = "_SPARK_AUTH_SECRET"


def kubernetes_conf(
    spec: ClusterSpec,
    settings: KubernetesSettings,
    *,
    python: str,
    template_path: str,
    secret_name: str,
    driver_secret_file: str,
    gpu_discovery_script: str = EXECUTOR_GPU_DISCOVERY_SCRIPT,
) -> dict[str, str]:
    """Every Spark property of a client-mode cluster of ``spec.n`` executor pods.

    ``python``: the interpreter path, the same in the notebook and the executor image.
    ``template_path``: a local file holding :func:`~occam.kubernetes.objects.executor_pod_template`.
    ``secret_name``: the Secret made by :func:`~occam.kubernetes.objects.auth_secret`.
    ``driver_secret_file``: a private local file (mode 0600) holding
    :func:`~occam.kubernetes.objects.driver_secret_file_bytes` of that Secret's value, written before
    the driver starts. ``gpu_discovery_script``: the path of the discovery script inside the executor
    image (see :data:`EXECUTOR_GPU_DISCOVERY_SCRIPT`).
    """
    conf = common_conf(spec, python=python)
    conf.update(
        {
            "spark.master": f"k8s://{settings.api_server}",
            "spark.submit.deployMode": "client",
            "spark.kubernetes.namespace": settings.namespace,
            "spark.kubernetes.container.image": executor_image(spec, settings),
            "spark.kubernetes.container.image.pullPolicy": settings.image_pull_policy,
            # Executors get an owner reference to the notebook pod, so they go when it goes (SPARK-25295).
            "spark.kubernetes.driver.pod.name": settings.pod_name,
            "spark.driver.host": settings.pod_ip,
            "spark.driver.bindAddress": "0.0.0.0",
            "spark.driver.port": str(settings.driver_port),
            "spark.blockManager.port": str(settings.block_manager_port),
            "spark.ui.port": str(settings.ui_port),
            "spark.executor.instances": str(spec.n),
            "spark.kubernetes.executor.podTemplateFile": template_path,
            "spark.kubernetes.executor.podTemplateContainerName": EXECUTOR_CONTAINER_NAME,
            "spark.kubernetes.executor.podNamePrefix": resource_name(spec),
            "spark.kubernetes.executor.deleteOnTermination": "true",
            # Spark sets the pod's resources itself; these make them equal the template's, which the
            # quota checks count.
            "spark.kubernetes.executor.request.cores": str(spec.cores),
            "spark.kubernetes.executor.limit.cores": str(spec.cores),
            "spark.executor.memoryOverhead": f"{executor_memory_overhead_mib(spec)}m",
        }
    )
    for name, value in cluster_labels(spec, settings).items():
        conf[f"spark.kubernetes.executor.label.{name}"] = value
    if settings.service_account:
        conf["spark.kubernetes.authenticate.executor.serviceAccountName"] = settings.service_account
    if settings.shared_path is not None:
        conf[SHARED_PATH_CONF] = settings.shared_path
    conf.update(auth_conf(secret_name=secret_name, driver_secret_file=driver_secret_file))
    if spec.gpu:
        conf.update(gpu_conf(spec, discovery_script=gpu_discovery_script))
        conf["spark.executor.resource.gpu.vendor"] = gpu_vendor(settings)
    return named(conf, KUBERNETES_BACKEND)


def auth_conf(*, secret_name: str, driver_secret_file: str) -> dict[str, str]:
    """Authenticated, encrypted RPC with the secret shared as the module docstring explains."""
    return {
        "spark.authenticate": "true",
        "spark.network.crypto.enabled": "true",
        "spark.authenticate.secret.driver.file": driver_secret_file,
        "spark.authenticate.secret.executor.file": UNUSED_EXECUTOR_SECRET_FILE,
        f"spark.kubernetes.executor.secretKeyRef.{AUTH_SECRET_ENV}": f"{secret_name}:{AUTH_SECRET_KEY}",
    }


def gpu_vendor(settings: KubernetesSettings) -> str:
    """``spark.executor.resource.gpu.vendor`` for the settings' GPU resource (``nvidia.com/gpu`` -> ``nvidia.com``).

    Spark names the pod's GPU resource ``<vendor>/gpu``, so other resource names cannot be expressed.
    """
    vendor, _, resource = settings.gpu_resource.rpartition("/")
    if not vendor or resource != "gpu":
        raise ConfigError(
            f"gpu_resource={settings.gpu_resource!r}: Spark asks Kubernetes for '<vendor>/gpu', "
            "so the GPU resource must be named like 'nvidia.com/gpu'"
        )
    return vendor
