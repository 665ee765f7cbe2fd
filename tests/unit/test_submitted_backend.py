"""How start_cluster() inside a submitted job reads its size from the job's Spark conf (pure parts)."""

from __future__ import annotations

import pytest

from occam.backends.submitted import in_submitted_job, mismatch_warning, submitted_executors, submitted_spec
from occam.errors import ConfigError


@pytest.mark.parametrize(
    ("conf", "n"),
    [
        ({"spark.occam.executors": "4", "spark.master": "local-cluster[2,1,1024]"}, 4),
        ({"spark.master": "local-cluster[3, 1, 1024]"}, 3),
        ({"spark.master": "k8s://https://api", "spark.executor.instances": "5"}, 5),
        ({"spark.master": "spark://host:7077"}, None),
    ],
)
def test_the_submissions_executor_count(conf, n):
    assert submitted_executors(conf) == n


def test_spec_comes_from_the_conf_and_the_scripts_n_only_where_the_conf_is_silent():
    conf = {
        "spark.master": "local-cluster[2,1,768]",
        "spark.app.name": "nightly",
        "spark.executor.cores": "1",
        "spark.executor.memory": "768m",
        "spark.executor.resource.gpu.amount": "1",
    }
    spec = submitted_spec(conf, requested_n=8, timeout=30)
    assert (spec.n, spec.cores, spec.memory, spec.gpu, spec.name, spec.timeout) == (2, 1, "768m", True, "nightly", 30)
    assert submitted_spec({"spark.master": "yarn"}, requested_n=3, timeout=30).n == 3


def test_a_bad_submission_is_a_config_error():
    with pytest.raises(ConfigError, match="at least one executor"):
        submitted_spec({"spark.executor.instances": "0"}, requested_n=2, timeout=30)


def test_the_script_is_told_when_it_asked_for_another_size():
    spec = submitted_spec({"spark.occam.executors": "4"}, requested_n=2, timeout=30)
    assert mismatch_warning(spec, n=None, gpu=False) is None  # start_cluster() with no n takes any size
    assert mismatch_warning(spec, n=4, gpu=False) is None
    message = mismatch_warning(spec, n=2, gpu=True)
    assert message is not None
    assert "start_cluster(n=2, gpu=True) inside a submitted job" in message
    assert "submitted with 4 executor(s), gpu=False" in message


def test_a_job_is_recognised_by_the_gateway_spark_submit_hands_to_python():
    assert in_submitted_job({"PYSPARK_GATEWAY_PORT": "41234"})
    assert not in_submitted_job({})
    assert not in_submitted_job({"PYSPARK_GATEWAY_PORT": ""})
