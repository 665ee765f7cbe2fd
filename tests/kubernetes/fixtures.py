"""Fixtures of the tiers that need a cluster (kubernetes, hub, chart, node): a real API server (one per
session, shared by every tier) and a fresh student namespace per test. Loaded as a plugin by tests/conftest.py.

``kube`` is the cluster: the one ``OCCAM_TEST_KUBECONFIG`` points at (admin credentials), or else a
:class:`~.controlplane.ControlPlane` started from the binaries that ``scripts/k8s-binaries.sh`` builds
into ``~/.cache/occam/k8s/v<version>/bin``. Without them the tier is skipped, saying how to build them;
with ``OCCAM_BUILD_K8S=1`` the script is run first (tens of minutes on a cold cache).

``namespace`` is a new namespace with the student's service account, role and token kubeconfig (see
:mod:`.student`), deleted after the test. It enforces Pod Security's ``restricted`` level, as the
spawner's namespaces do, except in the node tier: there a hostPath folder stands in for the shared work
volume and busybox probes run as root, and Pod Security is the kubernetes tier's to check. When a test fails, its report gets a section listing the
namespace's pods and events, and the log tails of any control-plane component that has died.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .controlplane import ControlPlane
from .processes import log_tail
from .student import StudentNamespace, create_student_namespace, namespace_report, restricted_pod_spec, wait_running

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = "scripts/k8s-binaries.sh"
REQUIRED_BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")


def k8s_bin_dir() -> Path:
    """Where ``scripts/k8s-binaries.sh`` puts the binaries (same variables and defaults as the script)."""
    cache = Path(os.environ.get("OCCAM_K8S_CACHE") or Path.home() / ".cache" / "occam" / "k8s")
    return cache / f"v{os.environ.get('OCCAM_K8S_VERSION') or '1.34.10'}" / "bin"


def _missing(bin_dir: Path) -> list[str]:
    return [name for name in REQUIRED_BINARIES if not os.access(bin_dir / name, os.X_OK)]


def find_binaries() -> Path:
    """The directory holding every required binary; builds them when OCCAM_BUILD_K8S=1, else skips."""
    bin_dir = k8s_bin_dir()
    missing = _missing(bin_dir)
    if not missing:
        return bin_dir
    if os.environ.get("OCCAM_BUILD_K8S") != "1":
        pytest.skip(
            f"the kubernetes tier needs {', '.join(missing)} in {bin_dir}: run `bash {BUILD_SCRIPT}` once "
            "(it builds them from source, tens of minutes the first time), or set OCCAM_BUILD_K8S=1 to build "
            "them from this test run, or set OCCAM_TEST_KUBECONFIG to an admin kubeconfig of a cluster to use"
        )
    result = subprocess.run(["bash", BUILD_SCRIPT], cwd=REPO, stdout=subprocess.PIPE, text=True, check=False)
    if result.returncode != 0:
        pytest.fail(f"`bash {BUILD_SCRIPT}` failed with status {result.returncode} (its log is above)")
    bin_dir = Path(result.stdout.strip().splitlines()[-1])
    missing = _missing(bin_dir)
    if missing:
        pytest.fail(f"`bash {BUILD_SCRIPT}` succeeded but {', '.join(missing)} are not in {bin_dir}")
    return bin_dir


@dataclass
class Kube:
    """The cluster under test: an admin kubeconfig and client, and the control plane when we started it."""

    kubeconfig: Path
    admin: Any  # kubernetes.client.ApiClient with cluster-admin rights
    control_plane: ControlPlane | None = None

    def dead_components(self) -> dict[str, str]:
        """Components of our control plane that have exited, with their log tails."""
        if self.control_plane is None:
            return {}
        return {name: log_tail(self.control_plane.log(name)) for name in self.control_plane.exited()}


def install_occam_cluster_roles(admin: Any) -> None:
    """The ClusterRoles the chart ships and the spawner binds in each student namespace (the notebook's rules, the
    hub's in-namespace ones), under the spawner's default names; today's rules if they exist."""
    from kubernetes import client

    from spawner.hub_rbac import hub_namespace_cluster_role, notebook_cluster_role

    rbac = client.RbacAuthorizationV1Api(admin)
    for role in (notebook_cluster_role(), hub_namespace_cluster_role()):
        try:
            rbac.create_cluster_role(role)
        except client.ApiException as exc:
            if exc.status != 409:
                raise
            rbac.patch_cluster_role(role["metadata"]["name"], {"rules": role["rules"]})


@pytest.fixture(scope="session")
def kube() -> Iterator[Kube]:
    from kubernetes import config

    existing = os.environ.get("OCCAM_TEST_KUBECONFIG")
    if existing:
        admin = config.new_client_from_config(existing)
        try:
            install_occam_cluster_roles(admin)
            yield Kube(Path(existing), admin)
        finally:
            admin.close()
        return
    with ControlPlane(find_binaries()) as control_plane:
        admin = config.new_client_from_config(str(control_plane.kubeconfig))
        try:
            install_occam_cluster_roles(admin)
            yield Kube(control_plane.kubeconfig, admin, control_plane)
        finally:
            admin.close()


@pytest.fixture
def namespace(kube: Kube, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[StudentNamespace]:
    """A fresh namespace with the student's account; deleted afterwards (without waiting for it to go)."""
    from kubernetes import client

    restricted = request.node.get_closest_marker("node") is None
    created = create_student_namespace(
        kube.admin, f"occam-test-{uuid.uuid4().hex[:8]}", tmp_path, restricted=restricted
    )
    yield created
    client.CoreV1Api(kube.admin).delete_namespace(created.name)


@pytest.fixture
def admin(kube: Kube) -> Any:
    from kubernetes import client

    return client.CoreV1Api(kube.admin)


@pytest.fixture
def notebook(admin: Any, namespace: StudentNamespace) -> dict[str, Any]:
    """The stand-in notebook pod (the Spark driver's pod), Running with an IP."""
    body = {
        "metadata": {"name": "jupyter-ada", "labels": {"component": "singleuser-server"}},
        "spec": restricted_pod_spec({"name": "notebook", "image": "registry.k8s.io/pause:3.10"}),
    }
    admin.create_namespaced_pod(namespace.name, body)
    pod = wait_running(admin, namespace.name, "jupyter-ada")
    return admin.api_client.sanitize_for_serialization(pod)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    report = yield
    if report.failed and report.when in ("setup", "call"):
        funcargs = getattr(item, "funcargs", {})
        kube, ns = funcargs.get("kube"), funcargs.get("namespace")
        if isinstance(kube, Kube):
            if isinstance(ns, StudentNamespace):
                try:
                    text = namespace_report(kube.admin, ns.name)
                except Exception as exc:
                    text = f"(could not read namespace {ns.name}: {exc})"
                report.sections.append((f"namespace {ns.name}", text))
            for name, tail in kube.dead_components().items():
                report.sections.append((f"{name} exited; its log ends", tail))
    return report
