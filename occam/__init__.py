"""Occam: a Spark + Horovod virtual cluster for distributed deep learning, from a notebook, in one call.

from occam import start_cluster, Dataset
with start_cluster(n=2) as cluster:
    data = Dataset.from_numpy(x, y)
    result = cluster.fit(build_model, data, epochs=5, batch_size=64)
"""

from occam import models
from occam.cluster import Cluster, connect, list_clusters, start_cluster
from occam.data.dataset import Dataset
from occam.errors import (
    ClusterStartError,
    ClusterStoppedError,
    ConfigError,
    DatasetError,
    ModelError,
    ModelNotFoundError,
    ModelPermissionError,
    OccamError,
    ServerStartError,
    TrainingError,
)
from occam.scaling import scaling
from occam.tracking.mlflow_store import runs
from occam.tracking.mlflow_ui import mlflow_ui
from occam.tracking.tensorboard import tensorboard

__version__ = "0.1.0"

__all__ = [
    "Cluster",
    "ClusterStartError",
    "ClusterStoppedError",
    "ConfigError",
    "Dataset",
    "DatasetError",
    "ModelError",
    "ModelNotFoundError",
    "ModelPermissionError",
    "OccamError",
    "ServerStartError",
    "TrainingError",
    "__version__",
    "connect",
    "list_clusters",
    "mlflow_ui",
    "models",
    "runs",
    "scaling",
    "start_cluster",
    "tensorboard",
]
