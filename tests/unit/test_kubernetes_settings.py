import pytest

from occam.errors import ConfigError
from occam.kubernetes.settings import KubernetesSettings, in_kubernetes_pod, settings_from_env

POD_ENV = {
    "OCCAM_K8S_NAMESPACE": "jane",
    "OCCAM_K8S_POD_NAME": "jupyter-jane",
    "OCCAM_K8S_POD_IP": "10.1.2.3",
    "OCCAM_K8S_EXECUTOR_IMAGE": "registry.example/occam:1.0",
}


def env(**extra):
    return {**POD_ENV, **extra}


def test_reads_the_pod_facts_the_spawner_sets():
    settings = settings_from_env(
        env(
            OCCAM_K8S_POD_UID="1234-abcd",
            OCCAM_K8S_IMAGE_PULL_POLICY="Always",
            OCCAM_K8S_SERVICE_ACCOUNT="occam-executor",
            OCCAM_K8S_USER="jane@uni.edu",
        )
    )
    assert settings.namespace == "jane"
    assert settings.pod_name == "jupyter-jane"
    assert settings.pod_ip == "10.1.2.3"
    assert settings.executor_image == "registry.example/occam:1.0"
    assert settings.pod_uid == "1234-abcd"
    assert settings.image_pull_policy == "Always"
    assert settings.service_account == "occam-executor"
    assert settings.user == "jane@uni.edu"


def test_optional_settings_have_documented_defaults():
    settings = settings_from_env(POD_ENV)
    assert settings.pod_uid is None
    assert settings.service_account is None
    assert settings.user is None
    assert settings.image_pull_policy == "IfNotPresent"
    assert settings.api_server == "https://kubernetes.default.svc"
    assert (settings.driver_port, settings.block_manager_port, settings.ui_port) == (7078, 7079, 4040)
    assert settings.gpu_resource == "nvidia.com/gpu"
    assert settings.gpu_node_selector == {}
    assert settings.gpu_tolerations == []


def test_gpu_placement_is_read_as_json():
    settings = settings_from_env(
        env(
            OCCAM_K8S_GPU_NODE_SELECTOR='{"nvidia.com/gpu.present": "true"}',
            OCCAM_K8S_GPU_TOLERATIONS='[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]',
        )
    )
    assert settings.gpu_node_selector == {"nvidia.com/gpu.present": "true"}
    assert settings.gpu_tolerations == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]


def test_explicit_arguments_win_over_the_environment():
    settings = settings_from_env(
        env(OCCAM_K8S_USER="env-user"), namespace="other", user="arg-user", gpu_node_selector={"a": "b"}
    )
    assert settings.namespace == "other"
    assert settings.user == "arg-user"
    assert settings.gpu_node_selector == {"a": "b"}


def test_an_argument_of_none_leaves_the_environment_value():
    assert settings_from_env(env(OCCAM_K8S_USER="env-user"), user=None).user == "env-user"


def test_arguments_alone_are_enough_outside_a_spawned_pod():
    settings = settings_from_env({}, namespace="ns", pod_name="p", pod_ip="10.0.0.1", executor_image="img")
    assert (settings.namespace, settings.pod_name, settings.pod_ip, settings.executor_image) == (
        "ns",
        "p",
        "10.0.0.1",
        "img",
    )


@pytest.mark.parametrize(
    ("variable", "argument"),
    [
        ("OCCAM_K8S_NAMESPACE", "namespace"),
        ("OCCAM_K8S_POD_NAME", "pod_name"),
        ("OCCAM_K8S_POD_IP", "pod_ip"),
        ("OCCAM_K8S_EXECUTOR_IMAGE", "executor_image"),
    ],
)
@pytest.mark.parametrize("missing", ["absent", "empty"])
def test_a_missing_required_value_names_the_variable_and_the_argument(variable, argument, missing):
    environ = dict(POD_ENV)
    if missing == "absent":
        del environ[variable]
    else:
        environ[variable] = "  "
    with pytest.raises(ConfigError) as raised:
        settings_from_env(environ)
    message = str(raised.value)
    assert variable in message
    assert "spawner sets it" in message
    assert f"pass {argument}=" in message


@pytest.mark.parametrize(
    ("variable", "raw"),
    [
        ("OCCAM_K8S_GPU_NODE_SELECTOR", "{not json"),
        ("OCCAM_K8S_GPU_NODE_SELECTOR", '["a list"]'),
        ("OCCAM_K8S_GPU_NODE_SELECTOR", '{"gpu": true}'),
        ("OCCAM_K8S_GPU_TOLERATIONS", "[{"),
        ("OCCAM_K8S_GPU_TOLERATIONS", '{"key": "x"}'),
        ("OCCAM_K8S_GPU_TOLERATIONS", '["x"]'),
    ],
)
def test_malformed_gpu_placement_names_the_variable_and_shows_an_example(variable, raw):
    with pytest.raises(ConfigError, match=variable) as raised:
        settings_from_env(env(**{variable: raw}))
    assert "e.g." in str(raised.value) or "write it like" in str(raised.value)


def test_an_unknown_pull_policy_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="Always, IfNotPresent, Never"):
        settings_from_env(env(OCCAM_K8S_IMAGE_PULL_POLICY="Sometimes"))


def test_an_unknown_argument_is_a_programming_error():
    with pytest.raises(TypeError, match="namespase"):
        settings_from_env(POD_ENV, namespase="typo")


@pytest.mark.parametrize("ports", [{"driver_port": 7079}, {"ui_port": 80}, {"block_manager_port": True}])
def test_driver_ports_must_be_distinct_unprivileged_numbers(ports):
    with pytest.raises(ConfigError, match="port"):
        KubernetesSettings(namespace="n", pod_name="p", pod_ip="1.2.3.4", executor_image="i", **ports)


def test_settings_are_frozen():
    settings = settings_from_env(POD_ENV)
    with pytest.raises(AttributeError):
        settings.namespace = "elsewhere"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        (POD_ENV, True),
        ({"OCCAM_K8S_NAMESPACE": "jane", "OCCAM_K8S_POD_NAME": "p"}, True),
        ({"OCCAM_K8S_NAMESPACE": "jane"}, False),
        ({"OCCAM_K8S_POD_NAME": "p"}, False),
        ({"OCCAM_K8S_NAMESPACE": "", "OCCAM_K8S_POD_NAME": "p"}, False),
        ({"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, False),
    ],
)
def test_in_kubernetes_pod_needs_the_namespace_and_pod_name(environ, expected):
    assert in_kubernetes_pod(environ) is expected
