import functools
import os

from occam.contract import BACKEND_CONF
from occam.sparkconf import embedded_conf, gpu_conf, packaged_gpu_discovery_script
from tests.unit import factories

embedded_conf = functools.partial(embedded_conf, gpu_discovery_script="/s.sh")


def spec(n=2, **kw):
    return factories.spec(n, **{"memory": "1536m", **kw})


def test_embedded_conf_is_a_local_cluster_of_separate_executor_jvms():
    conf = embedded_conf(spec(2), python="/venv/bin/python", work_dir="/tmp/w")
    assert conf["spark.master"] == "local-cluster[2,1,1536]"
    assert conf["spark.executor.memory"] == "1536m"
    assert conf["spark.pyspark.python"] == "/venv/bin/python"
    assert conf["spark.driver.bindAddress"] == "127.0.0.1"
    assert conf[BACKEND_CONF] == "embedded", "the session names its backend, which Dataset and fit ask"


def test_one_task_slot_per_executor_so_each_rank_gets_its_own_executor():
    conf = embedded_conf(spec(2, cores=3), python="p", work_dir="/w")
    assert conf["spark.executor.cores"] == conf["spark.task.cpus"] == "3"
    assert conf["spark.executorEnv.OMP_NUM_THREADS"] == "3"


def test_everything_the_cluster_writes_is_under_its_work_dir():
    conf = embedded_conf(spec(), python="p", work_dir="/tmp/w")
    for key in ("spark.local.dir", "spark.sql.warehouse.dir", "spark.executorEnv.TMPDIR"):
        assert conf[key].startswith("/tmp/w/")
    assert "-Djava.io.tmpdir=/tmp/w/tmp" in conf["spark.driver.extraJavaOptions"]


def test_gpu_requests_one_gpu_per_executor_and_task():
    conf = embedded_conf(spec(gpu=True), python="p", work_dir="/w")
    assert conf["spark.executor.resource.gpu.amount"] == "1"
    assert conf["spark.task.resource.gpu.amount"] == "1"
    assert conf["spark.executor.resource.gpu.discoveryScript"] == "/s.sh"
    assert conf["spark.worker.resource.gpu.discoveryScript"] == "/s.sh"
    assert "spark.executor.resource.gpu.amount" not in embedded_conf(spec(), python="p", work_dir="/w")
    assert gpu_conf(spec(), discovery_script="/s.sh")["spark.executor.resource.gpu.discoveryScript"] == "/s.sh"


def test_the_packaged_gpu_discovery_script_is_there_and_executable():
    assert os.access(packaged_gpu_discovery_script(), os.X_OK)
