"""Where ``occam.models.serve`` runs a service (the backend decides, ``where=`` overrides) and the pure readings
of a model service's Deployment and pod (occam.backends.kubernetes_serving). No cluster, no TensorFlow."""

from __future__ import annotations

import pytest

from occam.backends.embedded import EmbeddedBackend
from occam.backends.kubernetes import KubernetesBackend
from occam.backends.kubernetes_serving import pod_ready, replica_failure
from occam.errors import ConfigError
from occam.models.serving import pod_backend, serve

IN_POD = {"OCCAM_K8S_NAMESPACE": "occam-ada", "OCCAM_K8S_POD_NAME": "jupyter-ada"}


def test_in_a_notebook_pod_the_kubernetes_backend_serves_in_pods_elsewhere_a_process() -> None:
    assert pod_backend(None, IN_POD) is KubernetesBackend
    assert pod_backend(None, {}) is None
    assert pod_backend("process", IN_POD) is None
    assert pod_backend("kubernetes", {}) is KubernetesBackend  # asked for: its own settings check says what is missing
    assert pod_backend(None, {**IN_POD, "OCCAM_BACKEND": "embedded"}) is None  # the student chose embedded
    assert KubernetesBackend.serves_models_in_pods(IN_POD) and not EmbeddedBackend.serves_models_in_pods(IN_POD)


def test_a_backend_without_pods_refuses_to_start_or_stop_one() -> None:
    with pytest.raises(ConfigError, match="where='process'"):
        EmbeddedBackend.start_model_service(None, {})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="keeps no model service"):
        EmbeddedBackend.stop_model_service("m", 1, {})


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"where": "cloud"}, "where='cloud' is not a place"),
        ({"keep": "yes"}, "keep='yes' must be True or False"),
        ({"keep": True, "where": "process"}, "keep=True keeps a model service on Kubernetes"),
        ({"port": 8080, "where": "kubernetes"}, "host and port choose where a process listens"),
        ({"host": "0.0.0.0", "where": "kubernetes"}, "host and port"),
    ],
)
def test_bad_placement_is_refused_before_the_model_is_even_looked_up(arguments: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        serve("no-such-model", **arguments)


def test_a_pod_is_ready_only_with_its_ready_condition_and_not_while_being_deleted() -> None:
    ready = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    assert pod_ready(ready)
    assert not pod_ready({"status": {"conditions": [{"type": "Ready", "status": "False"}]}})
    assert not pod_ready({"status": {"phase": "Pending"}})
    assert not pod_ready({**ready, "metadata": {"deletionTimestamp": "2026-12-01T00:00:00Z"}})


def test_the_quota_refusing_the_pod_is_read_from_the_deployment() -> None:
    refused = {
        "status": {
            "conditions": [
                {"type": "Available", "status": "False"},
                {"type": "ReplicaFailure", "status": "True", "message": 'pods "x" is forbidden: exceeded quota'},
            ]
        }
    }
    assert replica_failure(refused) == 'pods "x" is forbidden: exceeded quota'
    assert replica_failure({"status": {"conditions": [{"type": "Available", "status": "True"}]}}) is None
    assert replica_failure(None) is None
