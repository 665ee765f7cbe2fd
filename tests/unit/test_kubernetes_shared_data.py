"""The course's read-only data volume (the chart's ``occam.sharedData``): read from the notebook's environment,
mounted read-only in every executor pod and a batch driver at the notebook's path, bad settings refused."""

import json

import pytest

from occam.errors import ConfigError
from occam.kubernetes.job_objects import driver_pod_template
from occam.kubernetes.objects import executor_pod_template
from occam.kubernetes.settings import settings_from_env
from tests.unit import factories

POD_ENV = {
    "OCCAM_K8S_NAMESPACE": "jane",
    "OCCAM_K8S_POD_NAME": "jupyter-jane",
    "OCCAM_K8S_POD_IP": "10.1.2.3",
    "OCCAM_K8S_EXECUTOR_IMAGE": "registry.example/occam:1.0",
}
CLAIM = {"persistentVolumeClaim": {"claimName": "course-datasets"}}


def data_env(volume: str = json.dumps(CLAIM), path: str = "/home/jovyan/shared/") -> dict[str, str]:
    return {**POD_ENV, "OCCAM_K8S_DATA_VOLUME": volume, "OCCAM_K8S_DATA_PATH": path}


def test_executors_and_a_batch_driver_mount_the_course_data_read_only_where_the_notebook_does():
    settings = settings_from_env(data_env())
    assert settings.data_volume == CLAIM and settings.data_path == "/home/jovyan/shared"
    executor = executor_pod_template(factories.spec(2), settings)["spec"]
    driver = driver_pod_template(factories.spec(2, name="job"), settings, service_account="sa")["spec"]
    volume = {"name": "occam-shared-data", "persistentVolumeClaim": {"claimName": "course-datasets", "readOnly": True}}
    mount = {"name": "occam-shared-data", "mountPath": "/home/jovyan/shared", "readOnly": True}
    for pod in (executor, driver):
        assert volume in pod["volumes"]
        assert mount in pod["containers"][0]["volumeMounts"]


def test_beside_the_shared_work_volume_and_for_sources_without_a_read_only_field():
    work = {"persistentVolumeClaim": {"claimName": "occam-work"}}
    host = {"hostPath": {"path": "/srv/datasets"}}
    settings = settings_from_env(
        data_env(volume=json.dumps(host), path="/data"), shared_volume=work, shared_path="/srv/occam-work"
    )
    pod = executor_pod_template(factories.spec(1), settings)["spec"]
    assert [v["name"] for v in pod["volumes"]] == ["occam-shared-work", "occam-shared-data"]
    # hostPath has no readOnly field: the mount alone makes it read-only.
    assert {"name": "occam-shared-data", "hostPath": {"path": "/srv/datasets"}} in pod["volumes"]
    mounts = {m["mountPath"]: m["readOnly"] for m in pod["containers"][0]["volumeMounts"]}
    assert mounts == {"/srv/occam-work": False, "/data": True}


def test_without_course_data_executors_mount_nothing_of_it():
    settings = settings_from_env(POD_ENV)
    assert settings.data_volume is None and settings.data_path is None
    pod = executor_pod_template(factories.spec(1), settings)["spec"]
    assert "occam-shared-data" not in json.dumps(pod)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({**POD_ENV, "OCCAM_K8S_DATA_VOLUME": json.dumps(CLAIM)}, "needs both.*OCCAM_K8S_DATA_PATH is missing"),
        (data_env(volume="{nfs}"), "OCCAM_K8S_DATA_VOLUME is not valid JSON"),
        (data_env(volume='{"nfs": "server:/x"}'), "must be one Kubernetes volume source"),
        (data_env(path="shared"), "must be an absolute path"),
        (data_env(path="/"), "must be an absolute path"),
    ],
)
def test_bad_course_data_settings_are_refused_naming_the_variable(env: dict[str, str], message: str):
    with pytest.raises(ConfigError, match=message):
        settings_from_env(env)


def test_the_course_data_and_the_work_volume_cannot_share_a_path():
    with pytest.raises(ConfigError, match="both mounted at /srv/x"):
        settings_from_env(data_env(path="/srv/x"), shared_volume=CLAIM, shared_path="/srv/x")
