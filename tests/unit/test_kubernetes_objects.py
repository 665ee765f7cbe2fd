import base64

import pytest

from occam.errors import ConfigError
from occam.kubernetes.objects import (
    AUTH_SECRET_KEY,
    CLUSTER_LABEL,
    USER_LABEL,
    auth_secret,
    auth_secret_name,
    cluster_labels,
    driver_secret_file_bytes,
    executor_pod_memory_bytes,
    executor_pod_template,
    label_value,
    new_auth_secret_value,
    owner_reference,
    quantity_to_bytes,
    quantity_to_millicores,
    resource_name,
)
from tests.unit import factories


def spec(n=2, **kw):
    return factories.spec(n, **{"name": "occam-ab12cd34", **kw})


settings = factories.settings


GPU_SETTINGS = {
    "gpu_node_selector": {"nvidia.com/gpu.present": "true"},
    "gpu_tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("jane", "jane"),
        ("Jane.Doe@uni.edu", "Jane.Doe-uni.edu"),
        ("--jane--", "jane"),
        ("_x_", "x"),
        ("élève", "l-ve"),
        ("@@@", ""),
        ("", ""),
    ],
)
def test_label_value_replaces_and_trims_what_kubernetes_refuses(text, expected):
    assert label_value(text) == expected


@pytest.mark.parametrize("text", ["a" * 100, "a" * 62 + "-bcd", "x" * 63 + "!", "user name with spaces " * 5])
def test_label_value_is_always_a_valid_label_value(text):
    value = label_value(text)
    assert len(value) <= 63
    assert factories.LABEL_VALUE.match(value)


@pytest.mark.parametrize("name", ["occam-ab12cd34", "My Cluster!", "---", "x" * 80, "Ünïcode_name"])
def test_resource_name_is_a_short_dns_label(name):
    result = resource_name(spec(name=name))
    assert factories.DNS_LABEL.match(result)
    assert len(result) <= 40


def test_cluster_labels_select_one_cluster_and_name_its_user():
    labels = cluster_labels(spec(), settings(user="Jane.Doe@uni.edu"))
    assert labels == {
        "app.kubernetes.io/name": "occam",
        "app.kubernetes.io/component": "executor",
        CLUSTER_LABEL: "occam-ab12cd34",
        USER_LABEL: "Jane.Doe-uni.edu",
    }


@pytest.mark.parametrize("user", [None, "", "@@@"])
def test_cluster_labels_leave_out_an_unknown_or_unusable_user(user):
    assert USER_LABEL not in cluster_labels(spec(), settings(user=user))


@pytest.mark.parametrize(
    ("memory", "pod_mib"),
    [
        ("1g", 1024 + 384),  # the 384 MiB floor
        ("3840m", 3840 + 384),  # where 10% reaches the floor
        ("4g", 4096 + 409),  # 10%, rounded down as Spark does
        ("8g", 8192 + 819),
        ("1500m", 1500 + 384),
    ],
)
def test_executor_pod_memory_adds_sparks_overhead(memory, pod_mib):
    assert executor_pod_memory_bytes(spec(memory=memory)) == pod_mib << 20


def test_executor_template_asks_for_the_executors_resources():
    template = executor_pod_template(spec(cores=3, memory="4g"), settings())
    assert template["apiVersion"] == "v1"
    assert template["kind"] == "Pod"
    [container] = template["spec"]["containers"]
    assert container["image"] == "img:1"
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["resources"] == {
        "requests": {"cpu": "3", "memory": "4505Mi"},
        "limits": {"cpu": "3", "memory": "4505Mi"},
    }
    assert quantity_to_bytes(container["resources"]["limits"]["memory"]) == executor_pod_memory_bytes(spec(memory="4g"))


def test_executor_template_is_locked_down():
    pod = executor_pod_template(spec(), settings())["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    security = pod["containers"][0]["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["runAsNonRoot"] is True


def test_executor_template_carries_the_cluster_labels():
    template = executor_pod_template(spec(), settings(user="jane"))
    assert template["metadata"]["labels"] == cluster_labels(spec(), settings(user="jane"))


def test_cpu_executors_get_no_gpu_and_no_gpu_placement():
    pod = executor_pod_template(spec(gpu=False), settings(**GPU_SETTINGS))["spec"]
    assert "nvidia.com/gpu" not in pod["containers"][0]["resources"]["limits"]
    assert "nodeSelector" not in pod
    assert "tolerations" not in pod


def test_gpu_executors_get_one_gpu_and_land_on_gpu_nodes():
    pod = executor_pod_template(spec(gpu=True), settings(**GPU_SETTINGS))["spec"]
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod["nodeSelector"] == GPU_SETTINGS["gpu_node_selector"]
    assert pod["tolerations"] == GPU_SETTINGS["gpu_tolerations"]


def test_gpu_resource_name_comes_from_the_settings():
    pod = executor_pod_template(spec(gpu=True), settings(gpu_resource="amd.com/gpu"))["spec"]
    assert pod["containers"][0]["resources"]["limits"]["amd.com/gpu"] == "1"


def test_template_does_not_share_mutable_state_with_the_settings():
    config = settings(**GPU_SETTINGS)
    pod = executor_pod_template(spec(gpu=True), config)["spec"]
    pod["nodeSelector"]["extra"] = "x"
    pod["tolerations"][0]["effect"] = "changed"
    assert config.gpu_node_selector == {"nvidia.com/gpu.present": "true"}
    assert config.gpu_tolerations[0]["effect"] == "NoSchedule"


def test_service_account_is_set_only_when_given():
    assert "serviceAccountName" not in executor_pod_template(spec(), settings())["spec"]
    pod = executor_pod_template(spec(), settings(service_account="occam-exec"))["spec"]
    assert pod["serviceAccountName"] == "occam-exec"


def test_owner_reference_points_at_the_notebook_pod():
    assert owner_reference(settings(pod_uid="u-123")) == {
        "apiVersion": "v1",
        "kind": "Pod",
        "name": "jupyter-jane",
        "uid": "u-123",
        "controller": False,
        "blockOwnerDeletion": True,
    }


def test_owner_reference_needs_the_pod_uid():
    assert owner_reference(settings()) is None


def test_auth_secret_holds_the_value_and_is_owned_by_the_notebook():
    value = new_auth_secret_value()
    secret = auth_secret(spec(), settings(pod_uid="u-123", user="jane"), value)
    assert secret["apiVersion"] == "v1"
    assert secret["kind"] == "Secret"
    assert secret["metadata"]["name"] == auth_secret_name(spec()) == "occam-ab12cd34-spark-auth"
    assert secret["metadata"]["namespace"] == "jane"
    assert secret["metadata"]["labels"][CLUSTER_LABEL] == "occam-ab12cd34"
    assert secret["metadata"]["labels"][USER_LABEL] == "jane"
    assert secret["metadata"]["ownerReferences"] == [owner_reference(settings(pod_uid="u-123"))]
    assert secret["immutable"] is True
    assert base64.b64decode(secret["data"][AUTH_SECRET_KEY]).decode() == value


def test_auth_secret_without_pod_uid_has_no_owner():
    secret = auth_secret(spec(), settings(), new_auth_secret_value())
    assert "ownerReferences" not in secret["metadata"]


def test_driver_file_gives_the_driver_the_key_the_executors_read():
    # Spark on Kubernetes keys the driver with base64(file bytes); executors use _SPARK_AUTH_SECRET as is.
    value = new_auth_secret_value()
    assert base64.b64encode(driver_secret_file_bytes(value)).decode() == value
    assert new_auth_secret_value() != value


@pytest.mark.parametrize("bad", ["not base64!", "c2hvcnQ=", "", "YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXo"])
def test_auth_secret_refuses_values_the_driver_could_not_share(bad):
    with pytest.raises(ValueError, match="base64"):
        auth_secret(spec(), settings(), bad)


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [
        ("512Mi", 512 << 20),
        ("1Gi", 1 << 30),
        ("1.5Gi", 3 << 29),
        ("1G", 10**9),
        ("1k", 1000),
        ("1Ki", 1024),
        ("1e3", 1000),
        ("1E3", 1000),
        ("2E", 2 * 10**18),
        ("123", 123),
        (123, 123),
        ("0", 0),
        ("100m", 1),  # rounded up, as Kubernetes does
        (".5Ki", 512),
    ],
)
def test_quantity_to_bytes(quantity, expected):
    assert quantity_to_bytes(quantity) == expected


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [("500m", 500), ("2", 2000), ("0.5", 500), ("1.25", 1250), ("1e-3", 1), ("250000000n", 250), ("0.0001", 1)],
)
def test_quantity_to_millicores(quantity, expected):
    assert quantity_to_millicores(quantity) == expected


@pytest.mark.parametrize("garbage", ["", "abc", "1x", "1 Gi", "-1", "1e", "Gi", "1.2.3", "1gi", "1MB", None, 1.5, True])
def test_quantities_are_parsed_strictly(garbage):
    with pytest.raises(ConfigError, match="Kubernetes quantity"):
        quantity_to_bytes(garbage)
