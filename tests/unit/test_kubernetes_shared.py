"""The shared work volume: its settings, the executor pod template's mount, and the not-shared check."""

import json

import pytest

from occam.backends.embedded import EmbeddedBackend
from occam.backends.kubernetes import KubernetesBackend
from occam.contract import BACKEND_CONF, SHARED_PATH_CONF
from occam.errors import ConfigError
from occam.kubernetes.objects import EXECUTOR_CONTAINER_NAME, executor_pod_template
from occam.kubernetes.settings import settings_from_env
from occam.kubernetes.shared import VOLUME_NAME, is_remote, unshared_path_problem
from occam.kubernetes.sparkconf import kubernetes_conf
from tests.unit import factories

POD_ENV = {
    "OCCAM_K8S_NAMESPACE": "jane",
    "OCCAM_K8S_POD_NAME": "jupyter-jane",
    "OCCAM_K8S_POD_IP": "10.1.2.3",
    "OCCAM_K8S_EXECUTOR_IMAGE": "registry.example/occam:1.0",
}
PVC = {"persistentVolumeClaim": {"claimName": "occam-work"}}
CONVERT = "the dataset is converted"


def shared_env(volume: str = json.dumps(PVC), path: str = "/srv/occam-work") -> dict[str, str]:
    return {**POD_ENV, "OCCAM_K8S_SHARED_VOLUME": volume, "OCCAM_K8S_SHARED_PATH": path}


# Settings


def test_the_shared_volume_is_read_from_the_environment():
    settings = settings_from_env(shared_env(path="/srv/occam-work/"))
    assert settings.shared_volume == PVC
    assert settings.shared_path == "/srv/occam-work"


def test_there_is_no_shared_volume_by_default():
    settings = settings_from_env(POD_ENV)
    assert settings.shared_volume is None and settings.shared_path is None


def test_arguments_win_over_the_environment():
    nfs = {"nfs": {"server": "nfs.example.org", "path": "/exports/jane"}}
    settings = settings_from_env(shared_env(), shared_volume=nfs, shared_path="/work")
    assert settings.shared_volume == nfs
    assert settings.shared_path == "/work"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (shared_env(volume="{persistentVolumeClaim: x}"), "OCCAM_K8S_SHARED_VOLUME is not valid JSON.*claimName"),
        (shared_env(volume='["nfs"]'), "must be one Kubernetes volume source"),
        (shared_env(volume=json.dumps({**PVC, "nfs": {}})), "must be one Kubernetes volume source"),
        (shared_env(volume='{"emptyDir": {}}'), "'emptyDir' cannot be shared.*belongs to one pod"),
        (shared_env(volume='{"nfs": "server:/x"}'), "nfs must map to an object"),
        (shared_env(path="work"), "shared path 'work' must be an absolute path.*OCCAM_K8S_SHARED_PATH"),
        (shared_env(path="/"), "cannot be the root directory"),
        ({**POD_ENV, "OCCAM_K8S_SHARED_VOLUME": json.dumps(PVC)}, "OCCAM_K8S_SHARED_PATH is missing"),
        ({**POD_ENV, "OCCAM_K8S_SHARED_PATH": "/srv/w"}, "OCCAM_K8S_SHARED_VOLUME is missing"),
    ],
)
def test_a_bad_shared_volume_is_refused_naming_the_fix(env: dict[str, str], message: str):
    with pytest.raises(ConfigError, match=message):
        settings_from_env(env)


# The executor pod template and the conf


def test_executors_mount_the_shared_volume_read_write_at_the_notebooks_path():
    settings = factories.settings(shared_volume=PVC, shared_path="/srv/occam-work")
    pod = executor_pod_template(factories.spec(), settings)
    assert pod["spec"]["volumes"] == [{"name": VOLUME_NAME, "persistentVolumeClaim": {"claimName": "occam-work"}}]
    (container,) = pod["spec"]["containers"]
    assert container["name"] == EXECUTOR_CONTAINER_NAME
    assert container["volumeMounts"] == [{"name": VOLUME_NAME, "mountPath": "/srv/occam-work", "readOnly": False}]


def test_any_volume_type_is_mounted_as_given():
    host = {"hostPath": {"path": "/var/occam", "type": "Directory"}}
    pod = executor_pod_template(factories.spec(), factories.settings(shared_volume=host, shared_path="/var/occam"))
    assert pod["spec"]["volumes"] == [{"name": VOLUME_NAME, **host}]


def test_without_a_shared_volume_executors_mount_nothing():
    pod = executor_pod_template(factories.spec(), factories.settings())
    assert "volumes" not in pod["spec"]
    assert "volumeMounts" not in pod["spec"]["containers"][0]


def test_the_conf_names_the_shared_path_for_the_checks():
    def conf(**overrides):
        return kubernetes_conf(
            factories.spec(),
            factories.settings(**overrides),
            python="/usr/bin/python3",
            template_path="/tmp/t.json",
            secret_name="s",
            driver_secret_file="/tmp/s",
        )

    assert conf(shared_volume=PVC, shared_path="/srv/w")[SHARED_PATH_CONF] == "/srv/w"
    assert SHARED_PATH_CONF not in conf()


# The check


def test_on_kubernetes_without_a_shared_volume_a_local_path_is_refused_naming_the_fix():
    problem = unshared_path_problem("/home/jovyan/.cache/occam/datasets", shared_path=None, writer=CONVERT)
    assert problem is not None
    assert problem.startswith(
        "the dataset is converted to /home/jovyan/.cache/occam/datasets, which the notebook and the executor pods "
        "do not both mount: "
    )
    assert "occam.sharedWork in the chart" in problem
    assert "OCCAM_K8S_SHARED_VOLUME/OCCAM_K8S_SHARED_PATH" in problem


@pytest.mark.parametrize(
    "path",
    ["/srv/occam-work/cache/datasets", "/srv/occam-work", "file:///srv/occam-work/checkpoints/m", "/srv/occam-work/."],
)
def test_paths_on_the_shared_volume_pass(path: str):
    assert unshared_path_problem(path, shared_path="/srv/occam-work", writer=CONVERT) is None


@pytest.mark.parametrize("path", ["/srv/occam-work2/cache", "/srv/occam-work/../elsewhere", "/home/jovyan/cache"])
def test_paths_beside_the_shared_volume_are_refused_naming_it(path: str):
    problem = unshared_path_problem(path, shared_path="/srv/occam-work", writer=CONVERT)
    assert problem is not None
    assert "only the shared work volume at /srv/occam-work is mounted by both" in problem


@pytest.mark.parametrize("path", ["hdfs://namenode:8020/occam", "s3a://bucket/occam", "gs://b/x"])
def test_remote_filesystems_are_shared_by_definition(path: str):
    assert is_remote(path)
    assert unshared_path_problem(path, shared_path=None, writer=CONVERT) is None


def test_each_backend_answers_for_its_own_sessions():
    """The Kubernetes backend reads the shared path from its own conf; the embedded cluster shares this disk."""
    path = "/home/me/.cache/occam"
    assert EmbeddedBackend.unshared_path_problem({}, path, writer=CONVERT) is None
    assert KubernetesBackend.unshared_path_problem({}, path, writer=CONVERT) is not None
    assert KubernetesBackend.unshared_path_problem({SHARED_PATH_CONF: "/home/me"}, path, writer=CONVERT) is None


class _StandInConf:
    """SparkConf's reading side: ``getAll`` and ``get``."""

    def __init__(self, conf: dict[str, str]) -> None:
        self._conf = conf

    def getAll(self):
        return list(self._conf.items())

    def get(self, key, default=None):
        return self._conf.get(key, default)


class _KubernetesSession:
    """Stands in for a SparkSession of a Kubernetes cluster: a real one needs executor pods to start.

    The check reads only ``sparkContext.getConf()``, which names the backend that made the session.
    """

    def __init__(self, conf: dict[str, str]) -> None:
        self.sparkContext = self
        self._conf = _StandInConf({BACKEND_CONF: "kubernetes", **conf})

    def getConf(self):  # SparkContext's name
        return self._conf


def test_dataset_conversion_on_kubernetes_without_a_shared_volume_fails_before_any_spark_job(tmp_path):
    import numpy as np

    from occam.data.dataset import Dataset
    from occam.errors import DatasetError

    x, y = np.zeros((4, 2), dtype=np.float32), np.arange(4)
    with pytest.raises(
        DatasetError, match=r"the dataset is converted to .*which the notebook and the executor pods do not both mount"
    ):
        Dataset.from_numpy(x, y, spark=_KubernetesSession({}), cache_dir=str(tmp_path))
    with pytest.raises(DatasetError, match=f"only the shared work volume at {tmp_path}/shared is mounted"):
        Dataset.from_numpy(
            x, y, spark=_KubernetesSession({SHARED_PATH_CONF: f"{tmp_path}/shared"}), cache_dir=str(tmp_path)
        )


class _StandInSpark(_KubernetesSession):
    """The only part of a running SparkSession that fit reads before refusing: its conf.
    A stand-in because the refusal must come before any Spark or Kubernetes work (tested for real in the
    node tier, where the volume is mounted)."""

    def __init__(self, shared_path: str | None) -> None:
        super().__init__({SHARED_PATH_CONF: shared_path} if shared_path else {})


@pytest.mark.parametrize("shared_path", [None, "/srv/occam-work"])
def test_fit_refuses_a_checkpoint_dir_the_driver_would_not_see_before_training(tmp_path, shared_path):
    from occam.data.dataset import Dataset
    from occam.training.fit import fit

    cluster = type("StandInCluster", (), {"spark": _StandInSpark(shared_path), "n": 2})()
    dataset = Dataset("/srv/occam-work/d", "features", "label", None, 10, {}, "key")
    checkpoints = tmp_path / "checkpoints"
    with pytest.raises(
        ConfigError, match=f"rank 0 writes checkpoints to {checkpoints}, which the notebook and the executor pods"
    ):
        fit(cluster, lambda: None, dataset, checkpoint_dir=str(checkpoints), progress=False)  # type: ignore[arg-type]
    assert not checkpoints.exists()
