"""Occam: a Spark + Horovod virtual cluster for distributed deep learning, from a notebook, in one call.

from occam import start_cluster, Dataset
with start_cluster(n=2) as cluster:
    data = Dataset.from_numpy(x, y)
    result = cluster.fit(build_model, data, epochs=5, batch_size=64)
"""

from occam.cluster import Cluster, connect, list_clusters, start_cluster
from occam.data.dataset import Dataset
from occam.errors import (
    ClusterStartError,
    ClusterStoppedError,
    ConfigError,
    DatasetError,
    OccamError,
    TrainingError,
)
from occam.scaling import scaling

__version__ = "0.1.0"

__all__ = [
    "Cluster",
    "ClusterStartError",
    "ClusterStoppedError",
    "ConfigError",
    "Dataset",
    "DatasetError",
    "OccamError",
    "TrainingError",
    "__version__",
    "connect",
    "list_clusters",
    "scaling",
    "start_cluster",
]
