"""The chart's course catalog (``occam.catalog``, templates/catalog.yaml, files/occam_config.py), rendered by Helm.

What must hold: the catalog service's pod is the only one that mounts the catalog writable, holds no
Kubernetes credentials and is reached only from the hub's proxy; notebooks mount the catalog read-only and are
told where it is and where the service is; the hub knows the service by the URL of its Service; the command the
chart runs is one the service accepts. Bad values fail naming the fix (tests/chart/values/bad-catalog-*.yaml,
checked with the other bad values in test_chart_render.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from occam.contract import (
    CATALOG_DIR_ENV,
    CATALOG_PATH_ENV,
    CATALOG_SERVICE_NAME,
    CATALOG_URL_ENV,
    CATALOG_VOLUME_ENV,
)

from .rendering import ADMIN_DEFAULTS, KUBE_VERSION, copy_without_dependency, objects, values_file

helm = pytest.importorskip("helm_python", reason="the chart tier needs helm-python-sdk (the dev extra)")
pytest.importorskip("tornado", reason="the catalog service needs tornado")


def _catalog_objects() -> dict[str, dict[str, Any]]:
    items = objects(values_file("catalog.yaml"))
    return {
        item["kind"]: item
        for item in items
        if item["metadata"]["name"] == "occam-catalog" and item["kind"] in ("Deployment", "Service", "NetworkPolicy")
    }


def test_lint_is_clean_with_the_catalog(tmp_path: Path) -> None:
    report = helm.lint(
        copy_without_dependency(tmp_path), values_file("catalog.yaml"), strict=True, kube_version=KUBE_VERSION
    )
    assert report["errors"] == [] and [m for m in report["messages"] if m["severity"] >= 2] == [], report


def test_no_catalog_by_default() -> None:
    assert not [item for item in objects(ADMIN_DEFAULTS) if "catalog" in item["metadata"]["name"]]


def test_the_service_pod_alone_writes_the_catalog_and_holds_no_credentials() -> None:
    found = _catalog_objects()
    assert sorted(found) == ["Deployment", "NetworkPolicy", "Service"]
    # the writer-node policy is cluster-scoped, named after the release (test_catalog_cluster.py enforces it)
    spec = found["Deployment"]["spec"]["template"]["spec"]
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["nodeSelector"] == {"occam.io/catalog-writer": "true"}
    assert spec["tolerations"] == [{"key": "occam.io/catalog-writer", "operator": "Exists", "effect": "NoSchedule"}]
    (container,) = spec["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    assert volumes["catalog"]["persistentVolumeClaim"] == {"claimName": "occam-catalog"}
    mounts = {mount["name"]: mount for mount in container["volumeMounts"]}
    assert mounts["catalog"]["mountPath"] == "/srv/occam-catalog" and not mounts["catalog"].get("readOnly")
    assert found["Deployment"]["spec"]["strategy"] == {"type": "Recreate"}, "one writer at a time"


def test_the_chart_runs_a_command_the_service_accepts(tmp_path: Path) -> None:
    from occam.models.catalog_service import settings_from

    (container,) = _catalog_objects()["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert container["command"][:3] == ["python3", "-m", "occam.models.catalog_service"]
    args = [f"--catalog-dir={tmp_path}" if a.startswith("--catalog-dir=") else a for a in container["command"][3:]]
    env = {item["name"]: item["value"] for item in container["env"]}
    settings = settings_from(args, env)
    assert (settings.ip, settings.port, settings.max_bytes) == ("0.0.0.0", 8080, 104857600)
    assert settings.prefix == f"/services/{CATALOG_SERVICE_NAME}/"
    assert settings.hub_api_url == "http://hub:8081/hub/api"
    assert container["readinessProbe"]["httpGet"]["path"] == settings.prefix + "api/health"
    assert container["ports"] == [{"name": "http", "containerPort": settings.port}]


def test_only_the_hub_s_proxy_reaches_the_service_and_it_reaches_only_the_hub_and_dns() -> None:
    found = _catalog_objects()
    policy = found["NetworkPolicy"]["spec"]
    assert policy["podSelector"]["matchLabels"] == found["Deployment"]["spec"]["selector"]["matchLabels"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    (ingress,) = policy["ingress"]
    assert ingress["from"] == [
        {"podSelector": {"matchLabels": {"app": "jupyterhub", "release": "occam", "component": "proxy"}}}
    ]
    hub, dns = policy["egress"]
    assert hub["to"] == [
        {"podSelector": {"matchLabels": {"app": "jupyterhub", "release": "occam", "component": "hub"}}}
    ]
    assert hub["ports"] == [{"port": 8081}]
    assert {"ipBlock": {"cidr": "169.254.20.10/32"}} in dns["to"]
    assert {p["port"] for p in dns["ports"]} == {53}
    labels = found["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert labels["hub.jupyter.org/network-access-hub"] == "true", "Z2JH's hub policy admits it"


def test_notebooks_mount_the_catalog_read_only_and_the_hub_routes_to_the_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from .test_hub_config import _run_as_z2jh

    c = _run_as_z2jh(tmp_path, monkeypatch, values_file("catalog.yaml"))
    volume = c.KubeSpawner.volumes["occam-catalog"]
    assert volume["csi"]["readOnly"] is True and volume["csi"]["driver"] == "nfs.csi.k8s.io"
    mount = c.KubeSpawner.volume_mounts["occam-catalog"]
    assert mount == {"name": "occam-catalog", "mountPath": "/home/jovyan/occam-catalog", "readOnly": True}
    assert "volume-{user_server}" in c.KubeSpawner.volumes, "Z2JH's home volume is kept"
    env = c.KubeSpawner.environment
    assert env[CATALOG_DIR_ENV] == "/home/jovyan/occam-catalog"
    assert env[CATALOG_URL_ENV] == f"http://proxy-public.jhub.svc.cluster.local/services/{CATALOG_SERVICE_NAME}/"
    # ... and its executors mount it read-only at the same path (the Kubernetes backend reads these in the notebook)
    executor_volume = json.loads(env[CATALOG_VOLUME_ENV].replace("{{", "{").replace("}}", "}"))
    assert executor_volume == {"csi": volume["csi"]} and env[CATALOG_PATH_ENV] == mount["mountPath"]
    (service,) = [s for s in c.JupyterHub.services if s["name"] == CATALOG_SERVICE_NAME]
    assert service["url"] == "http://occam-catalog.jhub.svc.cluster.local:8080"
    assert "api_token" not in service and "command" not in service, "externally managed, identified by its URL"
    assert _catalog_objects()["Service"]["spec"]["ports"][0]["port"] == 8080
