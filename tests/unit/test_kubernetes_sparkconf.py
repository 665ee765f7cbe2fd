import pytest

from occam.errors import ConfigError
from occam.kubernetes.objects import (
    AUTH_SECRET_KEY,
    EXECUTOR_CONTAINER_NAME,
    cluster_labels,
    executor_pod_memory_bytes,
    executor_pod_template,
)
from occam.kubernetes.sparkconf import EXECUTOR_GPU_DISCOVERY_SCRIPT, gpu_vendor, kubernetes_conf
from occam.spec import parse_memory
from tests.unit import factories


def spec(n=3, **kw):
    return factories.spec(n, **{"cores": 2, "memory": "4g", "name": "occam-ab12cd34", **kw})


settings = factories.settings


def conf(cluster=None, config=None, **kw):
    args = {
        "python": "/opt/venv/bin/python",
        "template_path": "/tmp/occam/executor.json",
        "secret_name": "occam-ab12cd34-spark-auth",
        "driver_secret_file": "/tmp/occam/auth",
    }
    args.update(kw)
    return kubernetes_conf(cluster or spec(), config or settings(), **args)


def test_client_mode_against_the_in_cluster_api():
    c = conf()
    assert c["spark.master"] == "k8s://https://kubernetes.default.svc"
    assert c["spark.submit.deployMode"] == "client"
    assert c["spark.kubernetes.namespace"] == "jane"
    assert c["spark.executor.instances"] == "3"


def test_api_server_comes_from_the_settings():
    assert conf(config=settings(api_server="https://10.0.0.1:6443"))["spark.master"] == "k8s://https://10.0.0.1:6443"


def test_shared_properties_come_from_common_conf():
    c = conf(spec(cores=2))
    assert c["spark.app.name"] == "occam-ab12cd34"
    assert c["spark.executor.cores"] == c["spark.task.cpus"] == "2"
    assert c["spark.executor.memory"] == "4g"
    assert c["spark.pyspark.python"] == "/opt/venv/bin/python"


def test_executors_reach_the_notebook_pod_on_fixed_ports():
    c = conf(config=settings(driver_port=30001, block_manager_port=30002, ui_port=30003))
    assert c["spark.driver.host"] == "10.1.2.3"
    assert c["spark.driver.bindAddress"] == "0.0.0.0"
    assert (c["spark.driver.port"], c["spark.blockManager.port"], c["spark.ui.port"]) == ("30001", "30002", "30003")


def test_executors_are_owned_by_the_notebook_pod():
    assert conf()["spark.kubernetes.driver.pod.name"] == "jupyter-jane"


def test_executors_use_the_image_and_the_pod_template():
    c = conf(config=settings(image_pull_policy="Always"))
    assert c["spark.kubernetes.container.image"] == "img:1"
    assert c["spark.kubernetes.container.image.pullPolicy"] == "Always"
    assert c["spark.kubernetes.executor.podTemplateFile"] == "/tmp/occam/executor.json"
    assert c["spark.kubernetes.executor.podTemplateContainerName"] == EXECUTOR_CONTAINER_NAME
    template = executor_pod_template(spec(), settings())
    assert template["spec"]["containers"][0]["name"] == EXECUTOR_CONTAINER_NAME


def test_executor_pods_carry_the_cluster_labels():
    c = conf(config=settings(user="jane"))
    labels = {k.removeprefix("spark.kubernetes.executor.label."): v for k, v in c.items() if ".label." in k}
    assert labels == cluster_labels(spec(), settings(user="jane"))


def test_spark_sizes_executor_pods_exactly_as_the_template_and_quota_checks_do():
    for memory in ("1g", "3840m", "4g", "10g"):
        cluster = spec(memory=memory)
        c = conf(cluster)
        heap, overhead = parse_memory(c["spark.executor.memory"]), parse_memory(c["spark.executor.memoryOverhead"])
        assert heap + overhead == executor_pod_memory_bytes(cluster)
    c = conf(spec(cores=2))
    assert c["spark.kubernetes.executor.request.cores"] == c["spark.kubernetes.executor.limit.cores"] == "2"


def test_rpc_is_authenticated_and_encrypted():
    c = conf()
    assert c["spark.authenticate"] == "true"
    assert c["spark.network.crypto.enabled"] == "true"


def test_the_secret_reaches_executors_by_reference_and_the_driver_by_file():
    c = conf(secret_name="my-secret", driver_secret_file="/home/jane/.occam/auth")
    assert c["spark.kubernetes.executor.secretKeyRef._SPARK_AUTH_SECRET"] == f"my-secret:{AUTH_SECRET_KEY}"
    assert c["spark.authenticate.secret.driver.file"] == "/home/jane/.occam/auth"
    # Spark requires both files or neither, and the executor file keeps the secret out of pod specs.
    assert c["spark.authenticate.secret.executor.file"]
    # Never the secret itself: Spark would ignore it on Kubernetes, and it would sit in the conf.
    assert "spark.authenticate.secret" not in c
    assert "spark.authenticate.secret.file" not in c
    assert not any(key.startswith("spark.executorEnv._SPARK_AUTH") for key in c)


def test_cpu_clusters_ask_for_no_gpu():
    assert not any(".resource.gpu." in key for key in conf(spec(gpu=False)))


def test_gpu_clusters_ask_for_one_gpu_per_executor_and_task():
    c = conf(spec(gpu=True))
    assert c["spark.executor.resource.gpu.amount"] == "1"
    assert c["spark.task.resource.gpu.amount"] == "1"
    assert c["spark.executor.resource.gpu.vendor"] == "nvidia.com"
    assert c["spark.executor.resource.gpu.discoveryScript"] == EXECUTOR_GPU_DISCOVERY_SCRIPT
    assert EXECUTOR_GPU_DISCOVERY_SCRIPT.startswith("/opt/")


def test_gpu_discovery_script_can_be_moved():
    c = conf(spec(gpu=True), gpu_discovery_script="/usr/local/bin/gpus.sh")
    assert c["spark.executor.resource.gpu.discoveryScript"] == "/usr/local/bin/gpus.sh"


def test_gpu_vendor_follows_the_gpu_resource():
    assert gpu_vendor(settings(gpu_resource="amd.com/gpu")) == "amd.com"
    assert conf(spec(gpu=True), settings(gpu_resource="amd.com/gpu"))["spark.executor.resource.gpu.vendor"] == "amd.com"


@pytest.mark.parametrize("resource", ["nvidia.com/mig-1g.10gb", "gpu", "/gpu"])
def test_a_gpu_resource_spark_cannot_name_is_refused(resource):
    with pytest.raises(ConfigError, match="'<vendor>/gpu'"):
        conf(spec(gpu=True), settings(gpu_resource=resource))


def test_executor_service_account_only_when_given():
    assert "spark.kubernetes.authenticate.executor.serviceAccountName" not in conf()
    c = conf(config=settings(service_account="occam-exec"))
    assert c["spark.kubernetes.authenticate.executor.serviceAccountName"] == "occam-exec"


def test_executor_pod_names_start_with_the_cluster_name():
    assert conf(spec(name="My Cluster"))["spark.kubernetes.executor.podNamePrefix"] == "my-cluster"


def test_every_value_is_a_string():
    assert all(isinstance(v, str) for v in conf(spec(gpu=True), settings(service_account="sa", user="u")).values())


def test_gpu_executors_run_the_gpu_image_when_a_cpu_notebook_borrows_gpus():
    from occam.kubernetes.objects import executor_pod_template

    borrowing = settings(gpu_executor_image="img:1-gpu")
    assert conf(spec(gpu=True), borrowing)["spark.kubernetes.container.image"] == "img:1-gpu"
    assert conf(spec(), borrowing)["spark.kubernetes.container.image"] == "img:1"  # CPU clusters: the usual one
    assert conf(spec(gpu=True), settings())["spark.kubernetes.container.image"] == "img:1"
    (container,) = executor_pod_template(spec(gpu=True), borrowing)["spec"]["containers"]
    assert container["image"] == "img:1-gpu"
