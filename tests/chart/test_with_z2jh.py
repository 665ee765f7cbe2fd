"""The whole chart, Zero to JupyterHub included, when a copy of the pinned Z2JH chart is at hand.

Z2JH cannot be fetched where these tests usually run, so they are skipped unless ``OCCAM_Z2JH_CHART``
names an unpacked Z2JH chart directory of the pinned release, e.g. after
``helm pull jupyterhub/jupyterhub --version 4.4.0 --untar --untardir /tmp/z2jh``:
``OCCAM_Z2JH_CHART=/tmp/z2jh/jupyterhub``. With it, a copy of the chart gets it in ``charts/`` (what
``helm dependency build`` does), and the tests check, for real: Z2JH's own schema accepts our values,
strict lint is clean, every object of the release passes a server-side dry-run, the hub Deployment
mounts Occam's config where Z2JH loads it and runs as the ServiceAccount our ClusterRoleBinding names,
and a release installs and uninstalls leaving nothing behind (Z2JH's image pre-puller hook is off, as
its Job would wait for images that kwok's nodes never pull).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ..kubernetes.fixtures import Kube
from ..kubernetes.student import wait_until
from . import z2jh_facts
from .rendering import ADMIN_DEFAULTS, CHART, KUBE_VERSION, values_file

helm = pytest.importorskip("helm_python", reason="the chart tier needs helm-python-sdk (the dev extra)")

GOOD = [None, "minimal.yaml", "gpu-course.yaml", "shared-volume.yaml"]
TIMEOUT = 120


@pytest.fixture(scope="module")
def full_chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = os.environ.get("OCCAM_Z2JH_CHART")
    if not source:
        pytest.skip("set OCCAM_Z2JH_CHART to an unpacked Z2JH chart (helm pull jupyterhub/jupyterhub --untar)")
    release = z2jh_facts.load()["release"]
    version = yaml.safe_load((Path(source) / "Chart.yaml").read_text())["version"]
    if version != release:
        pytest.fail(f"OCCAM_Z2JH_CHART={source} is Z2JH {version}; the chart pins {release}")
    target = tmp_path_factory.mktemp("full") / "occam"
    shutil.copytree(CHART, target, ignore=shutil.ignore_patterns("charts"))
    shutil.copytree(source, target / "charts" / "jupyterhub")
    return target


def _objects(chart_dir: Path, values: dict[str, Any] | None, namespace: str) -> list[dict[str, Any]]:
    with helm.Chart.load(chart_dir) as chart:
        rendered = chart.render(values, name="occam", namespace=namespace, is_install=True)
    return [
        d
        for path, text in sorted(rendered.items())
        if not path.endswith("NOTES.txt")
        for d in yaml.safe_load_all(text)
        if d
    ]


@pytest.fixture
def hub_namespace(kube: Kube) -> Iterator[str]:
    from kubernetes import client

    core = client.CoreV1Api(kube.admin)
    name = f"occam-z2jh-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


@pytest.mark.parametrize("name", GOOD)
def test_z2jh_accepts_our_values_and_lint_is_clean(full_chart: Path, name: str | None) -> None:
    values = values_file(name) if name else ADMIN_DEFAULTS
    report = helm.lint(full_chart, values, strict=True, kube_version=KUBE_VERSION)
    assert [m for m in report["messages"] if m["severity"] >= 2] == [], report
    items = _objects(full_chart, values, "jhub")
    (hub,) = [i for i in items if i["kind"] == "Deployment" and i["metadata"]["name"] == "hub"]
    pod = hub["spec"]["template"]["spec"]
    (binding,) = [
        i for i in items if i["kind"] == "ClusterRoleBinding" and i["metadata"]["name"].startswith("occam-hub-")
    ]
    assert binding["subjects"][0]["name"] == pod["serviceAccountName"]
    mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["occam-hub-config"]["mountPath"] == z2jh_facts.load()["facts"]["config_d"]["value"]
    assert {"name": "occam-hub-config", "configMap": {"name": "occam-hub-config"}} in pod["volumes"]


def test_z2jh_s_hub_and_proxy_policies_admit_notebooks_from_students_namespaces(full_chart: Path) -> None:
    """Notebooks run in students' namespaces: the hub's and the proxy's NetworkPolicies must let the labels
    KubeSpawner puts on them (Z2JH's singleuser.extraLabels) in from any namespace; the proxy's API port
    stays for the hub alone."""
    items = _objects(full_chart, values_file("minimal.yaml"), "jhub")
    policies = {i["metadata"]["name"]: i for i in items if i["kind"] == "NetworkPolicy"}
    labels = yaml.safe_load((CHART / "values.yaml").read_text())["jupyterhub"]["singleuser"]["extraLabels"]

    def admitted_from_any_namespace(policy: dict[str, Any], port: str) -> bool:
        for rule in policy["spec"]["ingress"]:
            if {"port": port} not in rule.get("ports", []):
                continue
            for peer in rule.get("from", []):
                selector = (peer.get("podSelector") or {}).get("matchLabels") or {}
                if peer.get("namespaceSelector") == {"matchLabels": {}} and selector.items() <= labels.items():
                    return True
        return False

    assert labels["hub.jupyter.org/network-access-hub"] == "true"
    assert admitted_from_any_namespace(policies["hub"], "http")
    assert admitted_from_any_namespace(policies["proxy"], "http")
    assert not admitted_from_any_namespace(policies["proxy"], "api")


def test_every_object_of_the_release_passes_a_server_side_dry_run(
    full_chart: Path, kube: Kube, hub_namespace: str
) -> None:
    from kubernetes import utils

    items = _objects(full_chart, values_file("gpu-course.yaml"), hub_namespace)
    assert len(items) > 20
    for item in items:
        utils.create_from_dict(kube.admin, item, namespace=hub_namespace, dry_run="All")


def test_the_release_installs_and_uninstalls_leaving_nothing(full_chart: Path, kube: Kube, hub_namespace: str) -> None:
    from kubernetes import client

    core = client.CoreV1Api(kube.admin)
    rbac = client.RbacAuthorizationV1Api(kube.admin)
    values = {
        "occam": {"sharedWork": ADMIN_DEFAULTS["occam"]["sharedWork"]},
        "jupyterhub": {"enabled": True, "prePuller": {"hook": {"enabled": False}}, **ADMIN_DEFAULTS["jupyterhub"]},
    }

    def left() -> list[str]:
        found = [f"Secret {s.metadata.name}" for s in core.list_namespaced_secret(hub_namespace).items]
        found += [f"PVC {p.metadata.name}" for p in core.list_namespaced_persistent_volume_claim(hub_namespace).items]
        found += [
            f"ConfigMap {c.metadata.name}"
            for c in core.list_namespaced_config_map(hub_namespace).items
            if c.metadata.name != "kube-root-ca.crt"
        ]
        for kind, items in (
            ("ClusterRole", rbac.list_cluster_role().items),
            ("ClusterRoleBinding", rbac.list_cluster_role_binding().items),
        ):
            for item in items:
                labels = item.metadata.labels or {}
                if "occam" in (labels.get("release"), labels.get("app.kubernetes.io/instance")):
                    found.append(f"{kind} {item.metadata.name}")
        return found

    with (
        helm.Config(kubeconfig_path=kube.kubeconfig, namespace=hub_namespace) as cfg,
        helm.Chart.load(full_chart) as chart,
    ):
        installed = cfg.install(chart, "occam", values, namespace=hub_namespace, timeout=TIMEOUT)
        try:
            assert installed.get("status") == "deployed"
            names = {s.metadata.name for s in core.list_namespaced_service_account(hub_namespace).items}
            assert "occam-hub" in names
            assert any(item.startswith("ClusterRole occam-user-scheduler") for item in left())
            assert f"ClusterRoleBinding occam-hub-{hub_namespace}-occam" in left()
            assert "occam-hub-config" in {c.metadata.name for c in core.list_namespaced_config_map(hub_namespace).items}
        finally:
            cfg.uninstall("occam", timeout=TIMEOUT)
    assert wait_until("the release's objects to be deleted", lambda: left() == [] or None, timeout=TIMEOUT)


def test_notebooks_in_student_namespaces_reach_the_hub(full_chart: Path) -> None:
    """The hub URL notebooks get names Z2JH's hub Service in the release's namespace, and Z2JH's hub
    NetworkPolicy admits notebook pods from other namespaces (Z2JH's own defaults do neither)."""
    import re

    config = (full_chart / "charts" / "jupyterhub" / "files" / "hub" / "jupyterhub_config.py").read_text()
    # Z2JH's own line, as recorded in z2jh-facts.json (what tests/chart/test_hub_config.py starts from)
    assert re.search(
        r'c\.JupyterHub\.hub_connect_url = \(\s*f\'http://\{get_name\("hub"\)\}:\{get_name_env\("hub", "_SERVICE_PORT"\)\}\'',
        config,
    ), "Z2JH's hub_connect_url line changed: re-read it and update the hub_connect_url fact"
    facts = z2jh_facts.load()["facts"]
    items = _objects(full_chart, values_file("gpu-course.yaml"), "course-2027")
    (service,) = [i for i in items if i["kind"] == "Service" and i["metadata"]["name"] == "hub"]
    (port,) = service["spec"]["ports"]
    assert facts["hub_connect_url"]["value"] == f"http://{service['metadata']['name']}:{port['port']}"

    (config_map,) = [i for i in items if i["kind"] == "ConfigMap" and i["metadata"]["name"] == "occam-hub-config"]
    namespace: dict[str, Any] = {}
    exec(compile(config_map["data"]["occam_config.py"], "occam_config.py", "exec"), namespace)
    values = yaml.safe_load(config_map["data"]["occam-values.json"])
    url = namespace["qualified_hub_url"](facts["hub_connect_url"]["value"], values["hubNamespace"], "cluster.local")
    assert url == "http://hub.course-2027.svc.cluster.local:8081"

    (policy,) = [i for i in items if i["kind"] == "NetworkPolicy" and i["metadata"]["name"] == "hub"]
    sources = [source for rule in policy["spec"]["ingress"] for source in rule.get("from", [])]
    label = {"hub.jupyter.org/network-access-hub": "true"}
    assert {"podSelector": {"matchLabels": label}, "namespaceSelector": {"matchLabels": {}}} in sources
    (deployment,) = [i for i in items if i["kind"] == "Deployment" and i["metadata"]["name"] == "hub"]
    # Z2JH labels every notebook pod with it (singleuser.extraLabels), whatever its namespace
    assert (
        label.items()
        <= yaml.safe_load((full_chart / "charts" / "jupyterhub" / "values.yaml").read_text())["singleuser"][
            "extraLabels"
        ].items()
    )
    assert deployment["spec"]["template"]["metadata"]["annotations"].keys() >= set(facts["hub_pod_checksums"]["value"])
