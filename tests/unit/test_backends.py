from typing import ClassVar

import pytest

from occam.backends import BACKENDS, Backend, register, select_backend
from occam.backends.embedded import EmbeddedBackend
from occam.errors import ConfigError


def test_auto_falls_back_to_the_embedded_cluster():
    assert select_backend("auto", environ={}) is EmbeddedBackend


def test_unknown_backend_lists_the_choices():
    with pytest.raises(ConfigError, match=r"backend='yarn' is not known; choose one of: .*embedded"):
        select_backend("yarn", environ={})


def test_auto_prefers_a_detected_backend_of_higher_priority():
    class Fake(Backend):
        name = "fake"
        priority = 10
        seen: ClassVar[list] = []

        @classmethod
        def detect(cls, environ):
            return environ.get("FAKE") == "1"

        check = launch = diagnostics = stop = lambda self: None  # type: ignore[assignment]

    register(Fake)
    try:
        assert select_backend("auto", environ={"FAKE": "1"}) is Fake
        assert select_backend("auto", environ={}) is EmbeddedBackend
        assert select_backend("fake", environ={}) is Fake
    finally:
        BACKENDS.pop("fake")


def test_auto_picks_kubernetes_inside_a_prepared_notebook_pod():
    from occam.backends.kubernetes import KubernetesBackend

    environ = {"OCCAM_K8S_NAMESPACE": "student-ada", "OCCAM_K8S_POD_NAME": "jupyter-ada"}
    assert select_backend("auto", environ=environ) is KubernetesBackend
    assert select_backend("embedded", environ=environ) is EmbeddedBackend


def test_inside_a_spark_submit_job_the_submitted_backend_takes_over_whatever_was_asked():
    from occam.backends.submitted import SubmittedBackend

    job_env = {"PYSPARK_GATEWAY_PORT": "41234"}
    assert select_backend("auto", job_env) is SubmittedBackend
    assert select_backend("embedded", job_env) is SubmittedBackend  # no second driver can start there
    assert select_backend("embedded", {}) is EmbeddedBackend


def test_a_backend_that_cannot_run_batch_jobs_says_which_can():
    from occam.backends.submitted import SubmittedBackend
    from occam.batch.job import Job, Submission
    from occam.spec import make_spec

    spec = make_spec(1, cores=1, memory="1g", gpu=False, timeout=10)
    with pytest.raises(ConfigError, match="use --backend embedded or kubernetes"):
        SubmittedBackend.submit_job(Submission(Job(script="train.py"), spec))
    with pytest.raises(ConfigError, match="--detach works on Kubernetes only"):
        EmbeddedBackend.submit_job(Submission(Job(script="train.py"), spec, detach=True))


def test_every_backend_names_itself_in_its_sessions_conf():
    """What Dataset and fit read to find the session's backend (occam.backends.backend_of)."""
    from occam.contract import BACKEND_CONF, EMBEDDED_BACKEND, KUBERNETES_BACKEND
    from occam.sparkconf import embedded_conf
    from tests.unit import factories

    assert embedded_conf(factories.spec(), python="p", work_dir="/w", gpu_discovery_script="/s")[BACKEND_CONF] == (
        EMBEDDED_BACKEND
    )
    assert BACKENDS[EMBEDDED_BACKEND] is EmbeddedBackend and KUBERNETES_BACKEND in BACKENDS
