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
