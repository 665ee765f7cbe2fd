"""OccamSpawner's shared work volume: the notebook pod mounts it and its env points Occam at it.

As in test_spawner_config, the spawner is made with KubeSpawner's mock hub and a kubeconfig naming an
address nothing listens on; no request is sent.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

pytest.importorskip("kubespawner", reason="the spawner needs the hub extra: pip install -e '.[hub]'")

from traitlets import TraitError  # noqa: E402

from occam.errors import ConfigError  # noqa: E402
from occam.kubernetes.settings import settings_from_env  # noqa: E402
from occam.kubernetes.shared import VOLUME_NAME  # noqa: E402
from spawner import notebook_pod  # noqa: E402
from tests.unit.test_spawner_config import kubeconfig, make, run  # noqa: E402, F401

NFS = {"nfs": {"server": "nfs.example.org", "path": "/exports/occam"}}


def test_the_env_points_the_backend_cache_and_checkpoints_at_the_volume():
    env = notebook_pod.env_by_name(notebook_pod.shared_work_env(NFS, "/srv/work/"))
    assert json.loads(env["OCCAM_K8S_SHARED_VOLUME"]) == NFS
    assert env["OCCAM_K8S_SHARED_PATH"] == "/srv/work"
    assert env["OCCAM_CACHE_DIR"] == "/srv/work/cache"
    assert env["OCCAM_CHECKPOINT_DIR"] == "/srv/work/checkpoints"
    assert env["OCCAM_MODELS_DIR"] == "/srv/work/models"
    pod_facts = {"OCCAM_K8S_NAMESPACE": "n", "OCCAM_K8S_POD_NAME": "p", "OCCAM_K8S_POD_IP": "1.2.3.4"}
    settings = settings_from_env({**env, **pod_facts, "OCCAM_K8S_EXECUTOR_IMAGE": "i"})
    assert (settings.shared_volume, settings.shared_path) == (NFS, "/srv/work")


def test_the_notebook_mounts_the_volume_read_write():
    volume, mount = notebook_pod.shared_work_mount(NFS, "/srv/work")
    assert volume == {"name": VOLUME_NAME, **NFS}
    assert mount == {"name": VOLUME_NAME, "mountPath": "/srv/work", "readOnly": False}
    with pytest.raises(ConfigError, match="emptyDir"):
        notebook_pod.shared_work_mount({"emptyDir": {}}, "/srv/work")


def test_the_pod_manifest_mounts_the_shared_work_volume_and_sets_its_env():
    async def check() -> None:
        spawner = make(image="reg/notebook:1", shared_work_volume=NFS, shared_work_path="/srv/occam-work")
        manifest = spawner.api.api_client.sanitize_for_serialization(await spawner.get_pod_manifest())
        volumes = {v["name"]: v for v in manifest["spec"]["volumes"]}
        assert volumes[VOLUME_NAME] == {"name": VOLUME_NAME, **NFS}
        container = manifest["spec"]["containers"][0]
        mounts = {m["name"]: m for m in container["volumeMounts"]}
        assert mounts[VOLUME_NAME] == {"name": VOLUME_NAME, "mountPath": "/srv/occam-work", "readOnly": False}
        env = {item["name"]: item.get("value") for item in container["env"]}
        assert json.loads(env["OCCAM_K8S_SHARED_VOLUME"]) == NFS
        assert env["OCCAM_K8S_SHARED_PATH"] == "/srv/occam-work"
        assert env["OCCAM_CACHE_DIR"] == "/srv/occam-work/cache"
        assert env["OCCAM_CHECKPOINT_DIR"] == "/srv/occam-work/checkpoints"

    run(check)


def test_without_a_volume_nothing_is_mounted_or_set():
    async def check() -> None:
        spawner = make(image="reg/notebook:1")
        manifest = spawner.api.api_client.sanitize_for_serialization(await spawner.get_pod_manifest())
        assert VOLUME_NAME not in {v["name"] for v in manifest["spec"].get("volumes") or []}
        env = {item["name"] for item in manifest["spec"]["containers"][0]["env"]}
        assert not env & {"OCCAM_K8S_SHARED_VOLUME", "OCCAM_K8S_SHARED_PATH", "OCCAM_CACHE_DIR"}

    run(check)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"shared_work_volume": {"emptyDir": {}}}, "shared_work_volume: .*'emptyDir' cannot be shared"),
        ({"shared_work_volume": {**NFS, "csi": {"driver": "x"}}}, "shared_work_volume: .*one Kubernetes volume source"),
        ({"shared_work_path": "occam-work"}, "shared_work_path='occam-work' must be an absolute path"),
    ],
)
def test_bad_shared_work_settings_are_refused(settings: dict[str, Any], message: str):
    async def check() -> None:
        with pytest.raises(TraitError, match=message):
            make(**settings)

    run(check)
