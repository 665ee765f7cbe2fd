"""The pure builders of a batch job's Spark conf, spark-submit command line and spark-defaults text."""

from __future__ import annotations

import pytest

from occam.backends.embedded_jobs import embedded_submit_conf
from occam.batch.conf import log4j_properties, spark_defaults_text, spark_submit_argv
from occam.contract import BACKEND_CONF, EXECUTORS_CONF
from occam.kubernetes.job_conf import kubernetes_app_resource, kubernetes_submit_conf
from occam.kubernetes.job_objects import AUTH_MOUNT, DRIVER_KEY
from occam.kubernetes.objects import CLUSTER_LABEL, COMPONENT_LABEL
from occam.kubernetes.sparkconf import kubernetes_conf

from .factories import settings, spec


def k8s_conf(**overrides):
    job = overrides.pop("job", spec(3, name="digits"))
    return kubernetes_submit_conf(
        job,
        overrides.pop("settings", settings(user="ada")),
        python="/opt/venv/bin/python",
        service_account="occam-notebook",
        executor_template="/tmp/x/executor.json",
        driver_template="/tmp/x/driver.json",
        environ=overrides.pop("environ", None),
    )


def test_embedded_job_uses_the_embedded_clusters_conf_in_client_mode():
    conf = embedded_submit_conf(spec(2, cores=1, memory="768m"), work_dir="/w")
    assert conf["spark.master"] == "local-cluster[2,1,768]"
    assert conf["spark.submit.deployMode"] == "client"  # Python cannot run in cluster mode on local masters
    assert conf["spark.local.dir"] == "/w/local"
    assert conf[EXECUTORS_CONF] == "2"
    # The job's driver asks the backend that submitted it (occam.backends.backend_of).
    assert conf[BACKEND_CONF] == "embedded"


def test_kubernetes_job_is_cluster_mode_with_a_driver_pod_that_owns_its_executors():
    conf = k8s_conf()
    assert conf["spark.submit.deployMode"] == "cluster"
    assert conf["spark.kubernetes.driver.pod.name"] == "digits-driver"
    assert conf["spark.kubernetes.authenticate.driver.serviceAccountName"] == "occam-notebook"
    assert conf["spark.kubernetes.driver.podTemplateFile"] == "/tmp/x/driver.json"
    assert conf["spark.kubernetes.executor.podTemplateFile"] == "/tmp/x/executor.json"
    assert conf["spark.executor.instances"] == "3" and conf[EXECUTORS_CONF] == "3"
    # The notebook's address means nothing to a driver pod: Spark fills these in itself.
    assert "spark.driver.host" not in conf and "spark.driver.bindAddress" not in conf
    assert conf["spark.kubernetes.submission.waitAppCompletion"] == "false"
    assert conf[BACKEND_CONF] == "kubernetes"
    assert (
        conf["spark.kubernetes.driverEnv.OMP_NUM_THREADS"] == conf["spark.kubernetes.driverEnv.TF_NUM_INTRAOP_THREADS"]
    )


def test_kubernetes_job_keeps_every_other_client_mode_property():
    client = kubernetes_conf(
        spec(3, name="digits"),
        settings(user="ada"),
        python="/opt/venv/bin/python",
        template_path="/tmp/x/executor.json",
        secret_name="digits-spark-auth",
        driver_secret_file=f"{AUTH_MOUNT}/{DRIVER_KEY}",
    )
    conf = k8s_conf()
    differ = {
        "spark.submit.deployMode",
        "spark.kubernetes.driver.pod.name",
        "spark.driver.host",
        "spark.driver.bindAddress",
    }
    kept = [key for key in client if key not in differ]
    assert {key: conf.get(key) for key in kept} == {key: client[key] for key in kept}


def test_kubernetes_driver_reads_the_rpc_key_from_the_mounted_secret_and_executors_by_reference():
    conf = k8s_conf()
    assert conf["spark.authenticate"] == "true" and conf["spark.network.crypto.enabled"] == "true"
    assert conf["spark.kubernetes.driver.secrets.digits-spark-auth"] == AUTH_MOUNT
    assert conf["spark.authenticate.secret.driver.file"] == f"{AUTH_MOUNT}/{DRIVER_KEY}"
    assert conf["spark.kubernetes.executor.secretKeyRef._SPARK_AUTH_SECRET"] == "digits-spark-auth:spark-auth-secret"
    assert "spark.authenticate.secret" not in conf


def test_kubernetes_driver_is_sized_like_an_executor_and_labelled_as_the_jobs_driver():
    conf = k8s_conf(job=spec(2, cores=2, memory="2g", name="big"))
    assert conf["spark.driver.memory"] == "2g"
    assert conf["spark.driver.memoryOverhead"] == "384m"
    assert conf["spark.kubernetes.driver.request.cores"] == conf["spark.kubernetes.driver.limit.cores"] == "2"
    assert conf[f"spark.kubernetes.driver.label.{CLUSTER_LABEL}"] == "big"
    assert conf[f"spark.kubernetes.driver.label.{COMPONENT_LABEL}"] == "driver"
    assert conf["spark.kubernetes.driver.label.occam.io/user"] == "ada"


def test_gpu_jobs_give_gpus_to_executors_only():
    conf = k8s_conf(job=spec(2, gpu=True, name="g"))
    assert conf["spark.executor.resource.gpu.amount"] == "1"
    assert not [k for k in conf if k.startswith("spark.driver.resource.")]


def test_spark_submit_argv_names_master_deploy_mode_then_every_property_then_the_app_and_its_args():
    argv = spark_submit_argv(
        "/s/bin/spark-submit",
        {
            "spark.master": "local-cluster[2,1,1024]",
            "spark.submit.deployMode": "client",
            "spark.b": "2",
            "spark.a": "x y",
        },
        "/job/train.py",
        ["--epochs", "3"],
    )
    assert argv == [
        "/s/bin/spark-submit",
        *("--master", "local-cluster[2,1,1024]", "--deploy-mode", "client"),
        *("--conf", "spark.a=x y", "--conf", "spark.b=2"),
        *("/job/train.py", "--epochs", "3"),
    ]


def test_kubernetes_app_resource_is_a_path_inside_the_driver_pod():
    assert kubernetes_app_resource("train.py") == "local:///opt/occam/job/train.py"


def test_spark_defaults_text_is_sorted_aligned_commented_and_never_holds_a_secret():
    text = spark_defaults_text(
        {"spark.master": "local[2]", "spark.app.name": "a", "spark.authenticate.secret": "hunter2"},
        ["made by occam conf", ""],
    )
    assert text.splitlines() == ["# made by occam conf", "#", "spark.app.name  a", "spark.master    local[2]"]
    assert "hunter2" not in text


@pytest.mark.parametrize("level", ["warn", "info"])
def test_log4j_properties_set_sparks_level_on_stderr(level):
    text = log4j_properties(level)
    assert f"rootLogger.level = {level}" in text
    assert "appender.console.target = SYSTEM_ERR" in text


def test_the_driver_inherits_cache_and_checkpoint_folders_only_on_the_shared_work_volume():
    shared = settings(user="ada", shared_volume={"nfs": {"server": "nfs", "path": "/w"}}, shared_path="/srv/w")
    environ = {"OCCAM_CACHE_DIR": "/srv/w/cache", "OCCAM_CHECKPOINT_DIR": "/home/jovyan/ck", "OCCAM_OTHER": "x"}
    conf = k8s_conf(settings=shared, environ=environ)
    assert conf["spark.kubernetes.driverEnv.OCCAM_CACHE_DIR"] == "/srv/w/cache"
    assert "spark.kubernetes.driverEnv.OCCAM_CHECKPOINT_DIR" not in conf  # the submitter's own disk
    assert not any(key.startswith("spark.kubernetes.driverEnv.OCCAM_") for key in k8s_conf(environ=environ))
