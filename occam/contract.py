"""The names the hub, the notebook and the executors must agree on, each written once.

The spawner (``spawner/``) sets the notebook pod's environment and labels, the notebook's Occam reads them and
builds executor pods, Spark conf and batch jobs from them, and the executors' entrypoint reads what the conf
and pods carry. Every such name lives here, with no logic beyond deriving one name from another: both sides
import this module, so a rename cannot leave one side behind. Pure constants; importing it loads nothing.
"""

from __future__ import annotations

# ---- environment variables: the notebook pod's (set by the spawner, read by occam.kubernetes.settings) ----

#: Prefix of every Occam setting read from the environment (``OCCAM_BACKEND``, ``OCCAM_CORES``...; occam.config).
ENV_PREFIX = "OCCAM_"
#: Prefix of the Kubernetes backend's settings (occam.kubernetes.settings).
K8S_ENV_PREFIX = "OCCAM_K8S_"

BACKEND_ENV = ENV_PREFIX + "BACKEND"
#: Minutes a cluster may sit with no Spark job and no fit before its executors are released (occam.config's
#: ``executor_idle_minutes``; the spawner sets it from the course's setting).
EXECUTOR_IDLE_MINUTES_ENV = ENV_PREFIX + "EXECUTOR_IDLE_MINUTES"
#: Minutes a kept model service may go without a request before it ends (occam.config's
#: ``serve_kept_idle_minutes``; the spawner sets it from the chart's ``occam.serving.keptIdleMinutes``).
SERVE_KEPT_IDLE_MINUTES_ENV = ENV_PREFIX + "SERVE_KEPT_IDLE_MINUTES"
CACHE_DIR_ENV = ENV_PREFIX + "CACHE_DIR"
CHECKPOINT_DIR_ENV = ENV_PREFIX + "CHECKPOINT_DIR"
#: Where every fit is recorded (occam.tracking): a course MLflow server when the spawner sets it.
TRACKING_URI_ENV = ENV_PREFIX + "TRACKING_URI"
#: The model store's root (occam.models); Horovod's ranks get it too, so ``occam.models.load`` in a model_fn works.
MODELS_DIR_ENV = ENV_PREFIX + "MODELS_DIR"
#: The notebook's user name, set by JupyterHub: the owner of the models a notebook publishes.
JUPYTERHUB_USER_ENV = "JUPYTERHUB_USER"
#: The course catalog of shared models (occam.models.catalog): the catalog service's URL (through the hub's
#: proxy, ``.../services/occam-catalog/``) and where the catalog is mounted read-only; the spawner sets both.
CATALOG_URL_ENV = ENV_PREFIX + "CATALOG_URL"
CATALOG_DIR_ENV = ENV_PREFIX + "CATALOG_DIR"
#: The catalog service's name as a JupyterHub service: the hub's proxy routes ``/services/<name>/`` to it.
CATALOG_SERVICE_NAME = "occam-catalog"
#: The notebook's JupyterHub API token, set by JupyterHub: what the catalog service identifies a student by.
JUPYTERHUB_API_TOKEN_ENV = "JUPYTERHUB_API_TOKEN"
#: The notebook server's base URL under JupyterHub (``/user/alice/``): jupyter-server-proxy serves local ports
#: under it (the Spark UI, model services).
JUPYTERHUB_SERVICE_PREFIX_ENV = "JUPYTERHUB_SERVICE_PREFIX"

# occam.config reads ``kubernetes.<name>`` from K8S_ENV_PREFIX + <NAME>; these are the ones the spawner sets.
NAMESPACE_ENV = K8S_ENV_PREFIX + "NAMESPACE"
POD_NAME_ENV = K8S_ENV_PREFIX + "POD_NAME"
POD_IP_ENV = K8S_ENV_PREFIX + "POD_IP"
POD_UID_ENV = K8S_ENV_PREFIX + "POD_UID"
EXECUTOR_IMAGE_ENV = K8S_ENV_PREFIX + "EXECUTOR_IMAGE"
#: The image GPU executors run, when it is not the executors' usual one (a CPU notebook borrowing GPUs).
GPU_EXECUTOR_IMAGE_ENV = K8S_ENV_PREFIX + "GPU_EXECUTOR_IMAGE"
IMAGE_PULL_POLICY_ENV = K8S_ENV_PREFIX + "IMAGE_PULL_POLICY"
SERVICE_ACCOUNT_ENV = K8S_ENV_PREFIX + "SERVICE_ACCOUNT"
USER_ENV = K8S_ENV_PREFIX + "USER"
GPU_NODE_SELECTOR_ENV = K8S_ENV_PREFIX + "GPU_NODE_SELECTOR"
GPU_TOLERATIONS_ENV = K8S_ENV_PREFIX + "GPU_TOLERATIONS"
API_SERVER_ENV = K8S_ENV_PREFIX + "API_SERVER"
SHARED_VOLUME_ENV = K8S_ENV_PREFIX + "SHARED_VOLUME"
SHARED_PATH_ENV = K8S_ENV_PREFIX + "SHARED_PATH"
#: The course's read-only data volume (the chart's ``occam.sharedData``): its source (JSON) and mount path.
DATA_VOLUME_ENV = K8S_ENV_PREFIX + "DATA_VOLUME"
DATA_PATH_ENV = K8S_ENV_PREFIX + "DATA_PATH"
#: The course catalog of shared models (the chart's ``occam.catalog``): its read-only source (JSON) and mount path,
#: so that executors mount it too and ``occam.models.load`` of a shared model works in a model_fn.
CATALOG_VOLUME_ENV = K8S_ENV_PREFIX + "CATALOG_VOLUME"
CATALOG_PATH_ENV = K8S_ENV_PREFIX + "CATALOG_PATH"
#: The account a Kubernetes batch job's driver pod runs as, when ``occam submit --service-account`` is not given.
DRIVER_SERVICE_ACCOUNT_ENV = K8S_ENV_PREFIX + "DRIVER_SERVICE_ACCOUNT"

# ---- backend names: ``OCCAM_BACKEND`` (the spawner sets the Kubernetes one) and ``backend=`` ----

EMBEDDED_BACKEND = "embedded"
KUBERNETES_BACKEND = "kubernetes"
SUBMITTED_BACKEND = "submitted"

# ---- labels of every object Occam makes (pods, Secrets, Services, namespaces) ----

APP_LABEL = "app.kubernetes.io/name"
COMPONENT_LABEL = "app.kubernetes.io/component"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
CLUSTER_LABEL = "occam.io/cluster"
USER_LABEL = "occam.io/user"
#: On a batch job's driver pod, executors, Secret and ConfigMap: they belong to the job, not to the notebook,
#: so stopping or culling the notebook leaves them running (the driver pod owns the rest; occam stop ends it).
BATCH_JOB_LABEL = "occam.io/batch-job"
#: Value of :data:`MANAGED_BY_LABEL` on every student namespace (and what is in it) that the spawner made.
SPAWNER_MANAGED_BY = "occam-spawner"
#: The student namespace's annotation with the exact username it was made for (labels cannot hold every name).
USERNAME_ANNOTATION = "occam.io/username"
#: Value of :data:`APP_LABEL` on every Occam pod: what the namespace's NetworkPolicy and the spawner select.
APP_NAME = "occam"
#: Values of :data:`COMPONENT_LABEL`.
NOTEBOOK_COMPONENT = "notebook"
EXECUTOR_COMPONENT = "executor"
DRIVER_COMPONENT = "driver"
#: A model service's pods (occam.kubernetes.serving).
SERVING_COMPONENT = "model-service"
#: On a model service's objects: which model it serves (the name, as a label value).
MODEL_LABEL = "occam.io/model"
#: On a model service's objects: the service's own name (model and version), which its Service selects.
MODEL_SERVICE_LABEL = "occam.io/model-service"
#: The prefix of every model service's name; the notebook's jupyter-server-proxy forwards only to these hosts.
MODEL_SERVICE_PREFIX = "occam-serve-"

# ---- ports: fixed in the notebook pod, so the namespace's NetworkPolicy can open exactly these ----

DRIVER_PORT = 7078
BLOCK_MANAGER_PORT = 7079
UI_PORT = 4040
#: The port a model service listens on in its own pod (its ClusterIP Service forwards port 80 to it).
SERVING_PORT = 5000

# ---- GPUs ----

#: The extended resource a GPU executor asks for (the NVIDIA device plugin's); the hub and quota count it.
GPU_RESOURCE = "nvidia.com/gpu"
#: Spark's ``spark.executor.resource.gpu.vendor`` for it: Spark asks Kubernetes for ``<vendor>/gpu``.
GPU_VENDOR = GPU_RESOURCE.rpartition("/")[0]


# ---- the shared work volume ----

#: Name of the shared work volume in the notebook pod, the executor pod template and a batch driver pod.
SHARED_VOLUME_NAME = "occam-shared-work"
#: Name of the course's read-only shared data volume in the notebook pod, executor pods and a batch driver pod.
DATA_VOLUME_NAME = "occam-shared-data"
#: Name of the course catalog's read-only volume in the notebook pod, executor pods and a batch driver pod.
CATALOG_VOLUME_NAME = "occam-catalog"

# ---- Spark properties Occam sets for itself (``spark.occam.*``: Spark ignores them) ----

#: The backend whose conf made a session: what ``Dataset`` and ``fit`` ask for backend-dependent answers.
BACKEND_CONF = "spark.occam.backend"
#: Set on every job Occam submits: the executors the job was given. ``start_cluster()`` in the job reads it.
EXECUTORS_CONF = "spark.occam.executors"
#: The Kubernetes backend's shared work path, so that a session (a batch job's too) knows it.
SHARED_PATH_CONF = "spark.occam.kubernetes.sharedPath"


def tensorflow_environment(cores: int) -> dict[str, str]:
    """Environment of a process that runs TensorFlow on ``cores`` cores: an executor, a Horovod rank, a batch driver.

    TensorFlow and OpenMP otherwise size their thread pools by the machine's (or node's) cores, so executors
    sharing a machine would oversubscribe it many times over; TensorFlow's C++ start-up notices are kept out of
    the student's output.
    """
    threads = str(cores)
    return {
        "OMP_NUM_THREADS": threads,
        "TF_NUM_INTRAOP_THREADS": threads,
        "TF_NUM_INTEROP_THREADS": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
