"""What the ranks' environment keeps of the driver's (``occam.training.environment``)."""

from __future__ import annotations

from occam.training.environment import rank_environment

DRIVER = {
    "PATH": "/opt/occam/venv/bin:/usr/bin",
    "HOME": "/home/jovyan",
    "LC_ALL": "C.UTF-8",
    "PYTHONPATH": "/work",
    "SPARK_HOME": "/opt/spark",
    "PYSPARK_PYTHON": "/opt/occam/venv/bin/python",
    "CUDA_VISIBLE_DEVICES": "0",
    "OCCAM_CACHE_DIR": "/srv/occam-work/cache",
    "OCCAM_K8S_NAMESPACE": "occam-ada",
    # Secrets the notebook or a batch driver holds:
    "JUPYTERHUB_API_TOKEN": "hub-token",
    "JPY_API_TOKEN": "hub-token",
    "PYSPARK_GATEWAY_SECRET": "py4j-secret",
    "_SPARK_AUTH_SECRET": "spark-secret",
    "AWS_SECRET_ACCESS_KEY": "aws",
    "OCCAM_S3_KEY": "k",
    "HF_TOKEN": "t",
    # Whose models occam.models.load("name") reads in a model_fn:
    "JUPYTERHUB_USER": "ada",
    # Unrelated to training:
    "KUBERNETES_SERVICE_HOST": "10.96.0.1",
    "OMP_NUM_THREADS": "64",
}


def test_ranks_get_what_python_spark_horovod_and_gpus_read_and_occams_settings():
    env = rank_environment(DRIVER, cores=2)
    for name in ("PATH", "HOME", "LC_ALL", "PYTHONPATH", "SPARK_HOME", "PYSPARK_PYTHON", "CUDA_VISIBLE_DEVICES"):
        assert env[name] == DRIVER[name]
    assert env["OCCAM_CACHE_DIR"] == "/srv/occam-work/cache"
    assert env["JUPYTERHUB_USER"] == "ada"


def test_ranks_never_get_a_secret_whatever_its_prefix():
    env = rank_environment(DRIVER, cores=2)
    leaked = [
        name for name, value in env.items() if value in {"hub-token", "py4j-secret", "spark-secret", "aws", "k", "t"}
    ]
    assert leaked == []
    assert "KUBERNETES_SERVICE_HOST" not in env


def test_thread_pools_follow_the_executors_cores_not_the_drivers():
    env = rank_environment(DRIVER, cores=2)
    assert env["OMP_NUM_THREADS"] == env["TF_NUM_INTRAOP_THREADS"] == "2"
    assert env["PYTHONUNBUFFERED"] == "1"
