"""The pure builders of what the spawner adds to the notebook pod: env, labels, service account."""

from __future__ import annotations

import json

import pytest

from occam import config
from occam.kubernetes.settings import in_kubernetes_pod, settings_from_env
from spawner.namespace import NOTEBOOK_LABELS, SERVICE_ACCOUNT
from spawner.network_policy import NOTEBOOK, NetworkAccess, network_policies
from spawner.notebook_pod import (
    DOWNWARD_API_FIELDS,
    SPARK_UI_PROXY_BASE_ENV,
    env_by_name,
    notebook_env,
    notebook_labels,
    pod_spec_fields,
    spark_ui_env,
)

TOLERATIONS = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]


def _by_name(env):
    return {item["name"]: item for item in env}


def _resolve(env, pod):
    """What the kubelet would set: downward API fields read from ``pod``, values as given."""
    fields = {
        "metadata.name": pod["metadata"]["name"],
        "metadata.namespace": pod["metadata"]["namespace"],
        "metadata.uid": pod["metadata"]["uid"],
        "status.podIP": pod["status"]["podIP"],
    }
    return {
        item["name"]: item["value"] if "value" in item else fields[item["valueFrom"]["fieldRef"]["fieldPath"]]
        for item in env
    }


def test_pod_facts_come_from_the_downward_api():
    env = _by_name(notebook_env(executor_image="reg/occam:1", user="ada"))
    assert env["OCCAM_K8S_NAMESPACE"] == {
        "name": "OCCAM_K8S_NAMESPACE",
        "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
    }
    assert env["OCCAM_K8S_POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["OCCAM_K8S_POD_UID"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.uid"}}
    assert env["OCCAM_K8S_POD_IP"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    for name in DOWNWARD_API_FIELDS:
        assert "value" not in env[name]
    assert env["OCCAM_K8S_EXECUTOR_IMAGE"] == {"name": "OCCAM_K8S_EXECUTOR_IMAGE", "value": "reg/occam:1"}
    assert env["OCCAM_K8S_USER"] == {"name": "OCCAM_K8S_USER", "value": "ada"}


def test_empty_gpu_placement_and_pull_policy_are_left_out():
    names = {item["name"] for item in notebook_env(executor_image="img", user="ada", gpu_node_selector={})}
    assert names == {
        "OCCAM_K8S_NAMESPACE",
        "OCCAM_K8S_POD_NAME",
        "OCCAM_K8S_POD_UID",
        "OCCAM_K8S_POD_IP",
        "OCCAM_K8S_EXECUTOR_IMAGE",
        "OCCAM_K8S_SERVICE_ACCOUNT",
        "OCCAM_K8S_USER",
    }


def test_gpu_placement_is_json():
    env = _by_name(
        notebook_env(
            executor_image="img",
            user="ada",
            image_pull_policy="Always",
            gpu_node_selector={"nvidia.com/gpu.present": "true"},
            gpu_tolerations=TOLERATIONS,
        )
    )
    assert json.loads(env["OCCAM_K8S_GPU_NODE_SELECTOR"]["value"]) == {"nvidia.com/gpu.present": "true"}
    assert json.loads(env["OCCAM_K8S_GPU_TOLERATIONS"]["value"]) == TOLERATIONS
    assert env["OCCAM_K8S_IMAGE_PULL_POLICY"]["value"] == "Always"


def test_the_backend_reads_back_what_the_spawner_sets():
    env = notebook_env(
        executor_image="reg/occam:1",
        user="Ada.Lovelace",
        image_pull_policy="Always",
        gpu_node_selector={"gpu": "true"},
        gpu_tolerations=TOLERATIONS,
        gpu_executor_image="reg/occam:1-gpu",
        executor_idle_minutes=7.5,
        kept_service_idle_minutes=90,
    )
    pod = {
        "metadata": {"name": "jupyter-ada", "namespace": "occam-ada", "uid": "0f0e-uid"},
        "status": {"podIP": "10.1.2.3"},
    }
    environ = _resolve(env, pod)
    assert in_kubernetes_pod(environ)
    settings = settings_from_env(environ)
    assert settings.namespace == "occam-ada"
    assert settings.pod_name == "jupyter-ada"
    assert settings.pod_uid == "0f0e-uid"
    assert settings.pod_ip == "10.1.2.3"
    assert settings.executor_image == "reg/occam:1"
    assert settings.image_pull_policy == "Always"
    assert settings.user == "Ada.Lovelace"
    assert settings.gpu_node_selector == {"gpu": "true"}
    assert settings.gpu_tolerations == TOLERATIONS
    # executors run as the notebook's account (token not mounted), whose imagePullSecrets they then get
    assert settings.service_account == "occam-notebook"
    assert settings.gpu_executor_image == "reg/occam:1-gpu"
    assert config.get("executor_idle_minutes", environ=environ) == 7.5
    assert config.get("serve_kept_idle_minutes", environ=environ) == 90
    assert config.get("serve_kept_idle_minutes", environ={}) == 0  # outside the chart: a kept one lives on


def test_a_negative_kept_service_idle_limit_is_refused_and_0_sets_nothing():
    with pytest.raises(ValueError, match="kept_service_idle_minutes"):
        notebook_env(executor_image="reg/occam:1", user="ada", kept_service_idle_minutes=-1)
    env = notebook_env(executor_image="reg/occam:1", user="ada", kept_service_idle_minutes=0)
    assert "OCCAM_SERVE_KEPT_IDLE_MINUTES" not in {e["name"] for e in env}


def test_an_empty_executor_image_is_refused():
    with pytest.raises(ValueError, match="executor_image"):
        notebook_env(executor_image=" ", user="ada")


def test_env_by_name_gives_kubespawner_values_or_env_vars():
    mapping = env_by_name(notebook_env(executor_image="img", user="ada"))
    assert mapping["OCCAM_K8S_EXECUTOR_IMAGE"] == "img"
    assert mapping["OCCAM_K8S_USER"] == "ada"
    assert mapping["OCCAM_K8S_POD_IP"] == {
        "name": "OCCAM_K8S_POD_IP",
        "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}},
    }


def test_labels_are_what_the_network_policy_selects():
    labels = notebook_labels()
    assert labels == {"app.kubernetes.io/name": "occam", "app.kubernetes.io/component": "notebook"}
    assert labels == NOTEBOOK_LABELS
    access = NetworkAccess(hub_namespace="jhub", hub_selector={"app": "jupyterhub"})
    (policy,) = [p for p in network_policies("occam-ada", {}, access) if p["metadata"]["name"] == NOTEBOOK]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    labels["x"] = "y"  # a copy: the module's constant is untouched
    assert "x" not in NOTEBOOK_LABELS


def test_the_pod_runs_as_the_notebook_account_with_its_token():
    assert pod_spec_fields() == {"serviceAccountName": SERVICE_ACCOUNT, "automountServiceAccountToken": True}


def test_the_spark_ui_env_makes_its_links_go_through_jupyter_server_proxy():
    assert spark_ui_env("/user/ada/", 4040) == {SPARK_UI_PROXY_BASE_ENV: "/user/ada/proxy/4040"}
    assert spark_ui_env("/user/ada", 4041) == {"APPLICATION_WEB_PROXY_BASE": "/user/ada/proxy/4041"}
    with pytest.raises(ValueError, match="must be a URL path"):
        spark_ui_env("user/ada/", 4040)
