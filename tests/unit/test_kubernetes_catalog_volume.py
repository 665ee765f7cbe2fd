"""The course catalog of shared models in executor pods (the chart's ``occam.catalog``): read from the notebook's
``OCCAM_K8S_CATALOG_VOLUME``/``_PATH``, mounted read-only in every executor and a batch driver at the notebook's
path (so ``occam.models.load("alice/x")`` works in a model_fn on every rank), bad settings refused."""

import json

import pytest

from occam.errors import ConfigError
from occam.kubernetes.job_objects import driver_pod_template
from occam.kubernetes.objects import executor_pod_template
from occam.kubernetes.settings import settings_from_env
from occam.training.environment import rank_environment
from tests.unit import factories

POD_ENV = {
    "OCCAM_K8S_NAMESPACE": "jane",
    "OCCAM_K8S_POD_NAME": "jupyter-jane",
    "OCCAM_K8S_POD_IP": "10.1.2.3",
    "OCCAM_K8S_EXECUTOR_IMAGE": "registry.example/occam:1.0",
}
CSI = {"csi": {"driver": "nfs.csi.k8s.io", "volumeAttributes": {"server": "nfs", "share": "/exports/catalog"}}}


def catalog_env(volume: str = json.dumps(CSI), path: str = "/home/jovyan/occam-catalog") -> dict[str, str]:
    return {**POD_ENV, "OCCAM_K8S_CATALOG_VOLUME": volume, "OCCAM_K8S_CATALOG_PATH": path}


def test_executors_and_a_batch_driver_mount_the_catalog_read_only_where_the_notebook_does():
    settings = settings_from_env(catalog_env())
    executor = executor_pod_template(factories.spec(2), settings)["spec"]
    driver = driver_pod_template(factories.spec(2, name="job"), settings, service_account="sa")["spec"]
    volume = {"name": "occam-catalog", "csi": {**CSI["csi"], "readOnly": True}}
    mount = {"name": "occam-catalog", "mountPath": "/home/jovyan/occam-catalog", "readOnly": True}
    for pod in (executor, driver):
        assert volume in pod["volumes"]
        assert mount in pod["containers"][0]["volumeMounts"]


def test_without_a_catalog_executors_mount_nothing_of_it():
    pod = executor_pod_template(factories.spec(1), settings_from_env(POD_ENV))["spec"]
    assert "occam-catalog" not in json.dumps(pod)


def test_the_ranks_are_told_where_the_catalog_is_but_never_get_the_token():
    env = rank_environment(
        {
            "OCCAM_CATALOG_DIR": "/home/jovyan/occam-catalog",
            "OCCAM_CATALOG_URL": "http://proxy-public.jhub.svc.cluster.local/services/occam-catalog/",
            "JUPYTERHUB_API_TOKEN": "secret",
            "JUPYTERHUB_USER": "jane",
        },
        cores=1,
    )
    assert env["OCCAM_CATALOG_DIR"] == "/home/jovyan/occam-catalog" and env["JUPYTERHUB_USER"] == "jane"
    assert "JUPYTERHUB_API_TOKEN" not in env


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {**POD_ENV, "OCCAM_K8S_CATALOG_VOLUME": json.dumps(CSI)},
            "catalog volume needs both.*CATALOG_PATH is missing",
        ),
        (catalog_env(volume="{csi}"), "OCCAM_K8S_CATALOG_VOLUME is not valid JSON"),
        (catalog_env(path="catalog"), r"must be an absolute path .*OCCAM_K8S_CATALOG_PATH"),
    ],
)
def test_bad_catalog_settings_are_refused_naming_the_variable(env: dict[str, str], message: str):
    with pytest.raises(ConfigError, match=message):
        settings_from_env(env)
