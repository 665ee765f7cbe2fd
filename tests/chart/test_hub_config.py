"""The chart's hub config file (charts/occam/files/occam_config.py) run as Zero to JupyterHub runs it.

The values come from the ConfigMap Helm renders. The file is executed the way Z2JH's
``jupyterhub_config.py`` executes ``jupyterhub_config.d/*.py`` (``exec`` with its ``c`` in scope, after
it set ``c.KubeSpawner.volumes``), and a real OccamSpawner is made from the resulting config; picking a
profile applies it as at a spawn (KubeSpawner's ``load_user_options``). No hub process and no cluster:
the spawner is made with KubeSpawner's mock hub (``_mock=True``) and a kubeconfig naming a closed
loopback port, since KubeSpawner loads one when it is made; nothing here calls the Kubernetes API.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from .rendering import CHART, by_kind, objects, values_file

pytest.importorskip("kubespawner", reason="the hub config needs the hub extra: pip install -e '.[hub]'")

from traitlets.config import Config  # noqa: E402

from spawner.spawner import OccamSpawner  # noqa: E402

CONFIG_FILE = CHART / "files" / "occam_config.py"
Z2JH_HOME_VOLUME = {
    "volume-{user_server}": {"name": "volume-{user_server}", "persistentVolumeClaim": {"claimName": "{pvc_name}"}}
}


@pytest.fixture(autouse=True)
def no_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    from kubespawner.clients import load_config

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: none\n"
        "clusters: [{name: none, cluster: {server: 'https://127.0.0.1:9'}}]\n"
        "users: [{name: none, user: {token: none}}]\n"
        "contexts: [{name: none, context: {cluster: none, user: none}}]\n"
    )
    monkeypatch.setattr("kubernetes_asyncio.config.kube_config.KUBE_CONFIG_DEFAULT_LOCATION", str(kubeconfig))
    load_config.cache_clear()
    yield
    load_config.cache_clear()


def _run_as_z2jh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, values: dict[str, Any] | None) -> Config:
    (config_map,) = by_kind(objects(values), "ConfigMap")
    values_path = tmp_path / "occam-values.json"
    values_path.write_text(config_map["data"]["occam-values.json"])
    monkeypatch.setenv("OCCAM_HUB_VALUES", str(values_path))
    c = Config()
    c.JupyterHub.spawner_class = "kubespawner.KubeSpawner"  # what Z2JH sets first
    c.KubeSpawner.volumes = dict(Z2JH_HOME_VOLUME)
    c.KubeSpawner.volume_mounts = {
        "volume-{user_server}": {"name": "volume-{user_server}", "mountPath": "/home/jovyan"}
    }
    source = config_map["data"]["occam_config.py"]
    exec(compile(source, "occam_config.py", "exec"), {"c": c})
    return c


def _spawner(c: Config, profile: str | None) -> OccamSpawner:
    """An OccamSpawner from ``c`` with ``profile`` picked (KubeSpawner wants an event loop to be made in)."""

    async def make() -> OccamSpawner:
        user = SimpleNamespace(name="ada", id=1, url="/user/ada/")
        spawner = OccamSpawner(_mock=True, user=user, config=c)
        if profile is not None:
            spawner.user_options = {"profile": profile}
            await spawner.load_user_options()
        return spawner

    return asyncio.run(make())


def test_importing_the_file_configures_nothing() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("occam_config", CONFIG_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.SHARED_DATA_VOLUME == "occam-shared-data"


def test_the_hub_runs_occam_spawner_with_the_course_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    c = _run_as_z2jh(tmp_path, monkeypatch, values_file("gpu-course.yaml"))
    assert c.JupyterHub.spawner_class == "occam"
    spawner = _spawner(c, None)
    assert spawner.namespace == "ml-ada"
    assert spawner.hub_namespace == "jhub"
    assert spawner.hub_selector == {"app": "jupyterhub", "release": "occam"}
    assert spawner.limits.max_executors == 4 and spawner.limits.memory == "64Gi"
    assert spawner.limits.executor_max_memory == "16Gi"
    # the chart's defaults for storage and object counts reach the spawner too
    assert (spawner.limits.ephemeral_storage, spawner.limits.storage, spawner.limits.secrets) == ("20Gi", "20Gi", 20)
    assert spawner.limits.persistent_volume_claims == 4
    assert spawner.check_node_fit is False
    assert spawner.pod_security_level == "restricted"


def test_picking_the_gpu_profile_sets_the_quota_image_and_gpu_placement(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = _run_as_z2jh(tmp_path, monkeypatch, values_file("gpu-course.yaml"))
    spawner = _spawner(c, "gpu-large")
    assert spawner.image == "registry.example.org/occam-notebook:0.1.0-gpu"
    assert spawner.limits.gpus == 4
    assert spawner.extra_resource_limits == {"nvidia.com/gpu": "1"}
    assert spawner.cpu_limit == 2.0 and spawner.mem_limit == 8 * 2**30
    selector = {"nvidia.com/gpu.present": "true", "occam.io/pool": "gpu"}
    assert spawner.gpu_node_selector == selector and spawner.node_selector == selector
    assert spawner.gpu_tolerations == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    env = spawner.get_env()
    assert json.loads(env["OCCAM_K8S_GPU_NODE_SELECTOR"]) == selector

    cpu = _spawner(_run_as_z2jh(tmp_path, monkeypatch, values_file("gpu-course.yaml")), "cpu")
    assert cpu.image == "registry.example.org/occam-notebook:0.1.0-cpu"
    assert cpu.limits.gpus == 0 and not cpu.extra_resource_limits and not cpu.gpu_node_selector


def test_the_shared_data_is_mounted_read_only_beside_z2jh_volumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = _run_as_z2jh(tmp_path, monkeypatch, values_file("shared-volume.yaml"))
    spawner = _spawner(c, "cpu")
    assert spawner.volumes == {
        **Z2JH_HOME_VOLUME,
        "occam-shared-data": {
            "name": "occam-shared-data",
            "nfs": {"server": "nfs.example.org", "path": "/exports/datasets", "readOnly": True},
        },
    }
    assert spawner.volume_mounts["occam-shared-data"] == {
        "name": "occam-shared-data",
        "mountPath": "/data/courses",
        "readOnly": True,
    }
    # The notebook tells the Kubernetes backend, which mounts the same volume read-only in every executor.
    env = spawner.get_env()
    assert json.loads(env["OCCAM_K8S_DATA_VOLUME"]) == {
        "nfs": {"server": "nfs.example.org", "path": "/exports/datasets", "readOnly": True}
    }
    assert env["OCCAM_K8S_DATA_PATH"] == "/data/courses"
    without = _spawner(_run_as_z2jh(tmp_path, monkeypatch, values_file("minimal.yaml")), "cpu")
    assert "occam-shared-data" not in without.volumes
    assert "OCCAM_K8S_DATA_VOLUME" not in without.get_env()


def test_the_shared_work_volume_reaches_the_spawner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spawner = _spawner(_run_as_z2jh(tmp_path, monkeypatch, values_file("shared-work.yaml")), "cpu")
    assert spawner.shared_work_volume == {"persistentVolumeClaim": {"claimName": "occam-work"}}
    assert spawner.shared_work_path == "/srv/occam-work"
    env = spawner.get_env()
    assert env["OCCAM_K8S_SHARED_PATH"] == "/srv/occam-work"
    assert env["OCCAM_CACHE_DIR"] == "/srv/occam-work/cache"
    without = _spawner(_run_as_z2jh(tmp_path, monkeypatch, values_file("work-off.yaml")), "cpu")
    assert without.shared_work_volume == {} and without.work_storage_class == ""
    assert "OCCAM_K8S_SHARED_VOLUME" not in without.get_env()


def test_each_student_s_own_work_volume_reaches_the_spawner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spawner = _spawner(_run_as_z2jh(tmp_path, monkeypatch, values_file("shared-work-per-student.yaml")), "cpu")
    assert (spawner.work_storage_class, spawner.work_storage_size) == ("nfs-client", "15Gi")
    assert spawner.shared_work_volume == {}
    assert spawner.work_volume == {"persistentVolumeClaim": {"claimName": "occam-work"}}
    assert spawner.get_env()["OCCAM_K8S_SHARED_PATH"] == "/srv/occam-work"


def test_the_network_values_reach_the_spawner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    values = values_file("minimal.yaml")
    values["occam"]["network"] = {"apiServerCIDRs": ["10.0.0.5/32"], "dnsCIDRs": ["169.254.20.10/32"], "internet": True}
    spawner = _spawner(_run_as_z2jh(tmp_path, monkeypatch, values), "cpu")
    assert spawner.api_server_cidrs == ["10.0.0.5/32"]
    assert spawner.dns_cidrs == ["169.254.20.10/32"]
    assert spawner.allow_internet is True
    default = _spawner(_run_as_z2jh(tmp_path, monkeypatch, values_file("minimal.yaml")), "cpu")
    assert default.allow_internet is False
    assert default.dns_cidrs == []


def test_the_course_tracking_server_reaches_the_notebooks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    values = values_file("minimal.yaml")
    values["occam"]["tracking"] = {"uri": "http://mlflow.occam.svc:5000"}
    spawner = _spawner(_run_as_z2jh(tmp_path, monkeypatch, values), "cpu")
    assert spawner.tracking_uri == "http://mlflow.occam.svc:5000"
    assert spawner.get_env()["OCCAM_TRACKING_URI"] == "http://mlflow.occam.svc:5000"
    default = _spawner(_run_as_z2jh(tmp_path, monkeypatch, values_file("minimal.yaml")), "cpu")
    assert default.tracking_uri == "" and "OCCAM_TRACKING_URI" not in default.get_env()


def test_the_default_values_make_a_working_spawner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    c = _run_as_z2jh(tmp_path, monkeypatch, None)
    for slug, gpus in (("cpu", 0), ("gpu", 3)):
        spawner = _spawner(c, slug)
        assert spawner.check_node_fit is True
        assert spawner.limits.gpus == gpus
        assert spawner.image.startswith("ghcr.io/occam-project/occam-notebook:0.1.0")


def test_z2jh_s_short_hub_url_becomes_one_every_student_namespace_resolves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from .z2jh_facts import load as z2jh_facts

    c = Config()
    # What Z2JH's jupyterhub_config.py sets before our file runs (the recorded fact; tests/chart/test_with_z2jh.py
    # reads it from the real chart): a short name, resolvable only in the hub's own namespace.
    c.JupyterHub.hub_connect_url = z2jh_facts()["facts"]["hub_connect_url"]["value"]
    (config_map,) = by_kind(objects(values_file("gpu-course.yaml")), "ConfigMap")
    values_path = tmp_path / "occam-values.json"
    values_path.write_text(config_map["data"]["occam-values.json"])
    monkeypatch.setenv("OCCAM_HUB_VALUES", str(values_path))
    exec(compile(config_map["data"]["occam_config.py"], "occam_config.py", "exec"), {"c": c})
    assert c.JupyterHub.hub_connect_url == "http://hub.jhub.svc.cluster.local:8081"
    # and what the notebook gets: KubeSpawner derives JUPYTERHUB_API_URL from the hub's connect URL
    from jupyterhub.app import JupyterHub

    assert JupyterHub(config=c).hub_connect_url == "http://hub.jhub.svc.cluster.local:8081"


def test_qualified_hub_url_keeps_what_is_already_qualified() -> None:
    namespace: dict[str, Any] = {}
    exec(compile(CONFIG_FILE.read_text(), "occam_config.py", "exec"), namespace)
    qualified = namespace["qualified_hub_url"]
    assert qualified("http://hub:8081", "course", "cluster.local") == "http://hub.course.svc.cluster.local:8081"
    assert qualified("http://hub:8081/x", "c", "k8s.example") == "http://hub.c.svc.k8s.example:8081/x"
    for kept in ("http://hub.other.svc:8081", "http://10.0.0.5:8081", "http://[fd00::1]:8081"):
        assert qualified(kept, "course", "cluster.local") == kept


def test_a_cpu_notebook_borrows_gpus_for_its_executors_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spawner = _spawner(_run_as_z2jh(tmp_path, monkeypatch, values_file("gpu-course.yaml")), "cpu-shared-gpu")
    assert spawner.image == "registry.example.org/occam-notebook:0.1.0-cpu"
    assert spawner.limits.gpus == 2  # the namespace's quota: what its executors may borrow
    assert not spawner.extra_resource_limits and not spawner.node_selector and not spawner.tolerations
    assert spawner.gpu_node_selector == {"nvidia.com/gpu.present": "true"}
    assert spawner.gpu_tolerations == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    env = spawner.get_env()
    assert env["OCCAM_K8S_EXECUTOR_IMAGE"] == "registry.example.org/occam-notebook:0.1.0-cpu"
    assert env["OCCAM_K8S_GPU_EXECUTOR_IMAGE"] == "registry.example.org/occam-notebook:0.1.0-gpu"
    assert spawner.notebook_gpus() == 0


def test_course_settings_reach_the_spawner_and_the_notebook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spawner = _spawner(_run_as_z2jh(tmp_path, monkeypatch, values_file("gpu-course.yaml")), "gpu-large")
    assert spawner.copied_pull_secrets == ["registry-credentials"]
    assert spawner.max_gpus_in_use == 8
    assert spawner.notebook_gpus() == 1
    env = spawner.get_env()
    assert env["OCCAM_EXECUTOR_IDLE_MINUTES"] == "20"
    assert env["OCCAM_SERVE_KEPT_IDLE_MINUTES"] == "120"  # the chart's default
    assert env["OCCAM_K8S_SERVICE_ACCOUNT"] == "occam-notebook"
    assert "OCCAM_K8S_GPU_EXECUTOR_IMAGE" not in env  # a GPU notebook's executors run its own image


def test_the_hub_restarts_when_the_mounted_settings_change(tmp_path: Path) -> None:
    """The watcher the hub pod runs, on real files and a real thread; its action is recorded instead of SIGTERM."""
    import threading

    namespace: dict[str, Any] = {}
    exec(compile(CONFIG_FILE.read_text(), "occam_config.py", "exec"), namespace)
    values = tmp_path / "occam-values.json"
    code = tmp_path / "occam_config.py"
    values.write_text('{"course": 1}')
    code.write_text("# v1")
    fired = threading.Event()
    stop = threading.Event()
    try:
        namespace["watch_config"]([str(values), str(code)], fired.set, every=0.02, stop=stop)
        assert not fired.wait(0.2), "nothing changed, yet the hub would restart"
        # the kubelet swaps a ConfigMap volume's files atomically; a moment with a file missing is no change
        values.unlink()
        assert not fired.wait(0.1)
        values.write_text('{"course": 1}')
        assert not fired.wait(0.1)
        values.write_text('{"course": 2}')
        assert fired.wait(5), "the settings changed but the hub would not restart"
    finally:
        stop.set()


def test_an_upgrade_that_changes_occam_values_restarts_the_hub_and_one_that_does_not_leaves_it(tmp_path: Path) -> None:
    """Render the release twice, as ``helm upgrade`` would, and swap the mounted files as the kubelet does."""
    import threading

    def mounted(values: dict[str, Any] | None) -> dict[str, str]:
        (config_map,) = by_kind(objects(values), "ConfigMap")
        data: dict[str, str] = config_map["data"]
        return data

    namespace: dict[str, Any] = {}
    exec(compile(CONFIG_FILE.read_text(), "occam_config.py", "exec"), namespace)
    before = mounted(values_file("gpu-course.yaml"))
    changed = values_file("gpu-course.yaml")
    changed["occam"]["course"]["executorIdleMinutes"] = 45
    for after, restarts in ((mounted(values_file("gpu-course.yaml")), False), (mounted(changed), True)):
        for name, text in before.items():
            (tmp_path / name).write_text(text)
        fired, stop = threading.Event(), threading.Event()
        paths = [str(tmp_path / name) for name in sorted(before)]
        namespace["watch_config"](paths, fired.set, every=0.02, stop=stop)
        try:
            for name, text in after.items():
                (tmp_path / name).write_text(text)
            assert fired.wait(0.5 if not restarts else 5) is restarts
        finally:
            stop.set()
