"""The whole course release on the real node: charts/occam with its Zero to JupyterHub 4.4.0 dependency, installed.

Helm (helm-python-sdk) installs a copy of the chart with the pinned Z2JH chart in its ``charts/`` (what
``helm dependency build`` does; ``OCCAM_Z2JH_CHART`` names the unpacked chart, the test skips without it).
The values are what an admin writes for this cluster, nothing that bends the chart: the images built here
(hub: images/hub, proxy: images/proxy, notebooks: images/notebook) with ``pullPolicy: Never``, the node's
provisioner for the home and work volumes, the node's DNS and API addresses for the students' NetworkPolicies,
and JupyterHub's own shared-password authenticator for one allowed student. Z2JH's hub and proxy pods run on
the node; kube-proxy routes their Services (:mod:`.kubeproxy`), kube-network-policies enforces both Z2JH's
policies and the students' namespaces' (:mod:`.netpolicy`).

The student logs in through the ``proxy-public`` Service (from this machine, at its cluster IP), asks the hub
for a token, starts a server: the hub (OccamSpawner in the hub pod) makes the namespace ``occam-<user>`` and
the notebook pod, which reaches the hub at the fully qualified URL the chart gives it (Z2JH's own
``http://hub:8081`` resolves only in the release's namespace). In the notebook, through the proxy,
``start_cluster(n=1)`` starts an executor pod and runs a Spark job. Stopping the server and uninstalling the
release leave no pod and no namespace.

Its time (install to uninstall) is printed; docs/kubernetes-test-cluster.md records it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from spawner.namespace import namespace_name
from tests.chart.rendering import CHART
from tests.kubernetes.fixtures import Kube
from tests.kubernetes.student import delete_namespaces, namespace_report, wait_until

from .kernel import Kernel
from .kubeproxy import ServiceProxy
from .netpolicy import PolicyEnforcer
from .nodeconfig import API_SERVICE_IP, GATEWAY
from .podlogs import PodLogs
from .provisioner import STORAGE_CLASS, VolumeProvisioner
from .realnode import RealNode

helm = pytest.importorskip("helm_python", reason="the release test installs the chart with helm-python-sdk")

RELEASE = "occam"
Z2JH_VERSION = "4.4.0"
INSTALL_TIMEOUT = 300
SPAWN_TIMEOUT = 300
PASSWORD_BYTES = 18


def release_values(images: dict[str, str], student: str, password: str) -> dict[str, Any]:
    """The admin's values for this cluster (``images``: role -> ``name:tag`` of the images built here)."""

    def image(role: str) -> dict[str, str]:
        name, tag = images[role].rsplit(":", 1)
        return {"name": name, "tag": tag}

    never = {"pullPolicy": "Never"}
    return {
        "occam": {
            "course": {"maxExecutors": 2, "cpu": "4", "memory": "8Gi"},
            "images": {"notebook": image("notebook"), "gpuNotebook": image("notebook")},
            "gpuPrePuller": {"enabled": False},
            "profiles": [
                {
                    "slug": "cpu",
                    "displayName": "CPU cluster",
                    "default": True,
                    "image": "notebook",
                    "notebook": {"cpu": 1, "memory": "2Gi"},
                    "gpus": 0,
                }
            ],
            # The node's DNS is a host process on the gateway (not kube-dns pods), named by address as an admin
            # names NodeLocal DNSCache's; the API server is behind the kubernetes Service's IP.
            "network": {"apiServerCIDRs": [f"{API_SERVICE_IP}/32"], "dnsCIDRs": [f"{GATEWAY}/32"]},
            "sharedWork": {"storageClass": STORAGE_CLASS, "size": "1Gi"},
        },
        "jupyterhub": {
            "hub": {
                "image": {**image("hub"), **never},
                "db": {"type": "sqlite-memory"},
                "config": {
                    "JupyterHub": {"authenticator_class": "shared-password"},
                    "SharedPasswordAuthenticator": {"user_password": password, "allowed_users": [student]},
                },
            },
            "proxy": {"service": {"type": "ClusterIP"}, "chp": {"image": {**image("proxy"), **never}}},
            "singleuser": {
                "image": {**image("notebook"), **never},
                "storage": {"dynamic": {"storageClass": STORAGE_CLASS}, "capacity": "1Gi"},
            },
            # One node, images already on it: no pre-pulling, no scheduler of Z2JH's own, no placeholders.
            "prePuller": {"hook": {"enabled": False}, "continuous": {"enabled": False}},
            "scheduling": {"userScheduler": {"enabled": False}, "userPlaceholder": {"enabled": False}},
        },
    }


def chart_with_z2jh(destination: Path) -> Path:
    """A copy of charts/occam with the pinned Z2JH chart in its ``charts/`` (skips without ``OCCAM_Z2JH_CHART``)."""
    source = os.environ.get("OCCAM_Z2JH_CHART")
    if not source:
        pytest.skip("set OCCAM_Z2JH_CHART to the unpacked Z2JH 4.4.0 chart (helm pull jupyterhub/jupyterhub --untar)")
    version = yaml.safe_load((Path(source) / "Chart.yaml").read_text())["version"]
    if version != Z2JH_VERSION:
        pytest.fail(f"OCCAM_Z2JH_CHART={source} is Z2JH {version}; the chart pins {Z2JH_VERSION}")
    target = destination / "occam"
    shutil.copytree(CHART, target, ignore=shutil.ignore_patterns("charts", "Chart.lock"))
    shutil.copytree(source, target / "charts" / "jupyterhub")
    return target


@dataclass
class Student:
    """A student's browser on the hub's public URL: the login cookies, then a token the hub gave them."""

    url: str
    name: str
    token: str = ""
    session: Any = field(default=None, repr=False)

    def login(self, password: str) -> int:
        """Log in with ``password`` through the login form; the status of the form's answer (302: logged in)."""
        import requests

        self.session = requests.Session()
        login = f"{self.url}/hub/login"
        page = self.session.get(login, timeout=30)
        assert page.status_code == 200, page.text[:300]
        form = {"username": self.name, "password": password, "_xsrf": self.session.cookies.get("_xsrf")}
        answer = self.session.post(login, data=form, allow_redirects=False, timeout=30)
        if answer.status_code != 302:
            return answer.status_code
        # A token for the API calls below, asked for with the login cookie (and its XSRF token) as a page would.
        xsrf = self.session.cookies.get("_xsrf")
        reply = self.session.post(
            f"{self.url}/hub/api/users/{self.name}/tokens",
            json={"note": "release test", "expires_in": 3600},
            headers={"X-XSRFToken": xsrf},
            timeout=30,
        )
        assert reply.status_code == 201, (reply.status_code, reply.text[:300])
        self.token = reply.json()["token"]
        return answer.status_code

    def request(self, method: str, url: str, body: Any = None) -> tuple[int, bytes]:
        import requests

        headers = {"Authorization": f"token {self.token}"}
        reply = requests.request(method, url, json=body, headers=headers, timeout=60, allow_redirects=False)
        return reply.status_code, reply.content

    def api(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        status, raw = self.request(method, f"{self.url}/hub/api{path}", body)
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw[:300]


@pytest.fixture
def release_namespace(kube: Kube) -> Iterator[str]:
    from kubernetes import client

    core = client.CoreV1Api(kube.admin)
    name = f"occam-release-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": name}})
    yield name
    delete_namespaces(core, [name], timeout=180)


def _pods_ready(core: Any, namespace: str, components: list[str]) -> bool:
    pods = core.list_namespaced_pod(namespace).items
    ready = {
        p.metadata.labels.get("component")
        for p in pods
        if p.status.phase == "Running" and all(c.ready for c in p.status.container_statuses or [])
    }
    return set(components) <= ready


def test_the_course_release_installs_and_a_student_runs_spark_from_a_notebook_it_spawned(
    kube: Kube,
    on_real_node: RealNode,
    service_proxy: ServiceProxy,
    policy_enforcer: PolicyEnforcer,
    volume_provisioner: VolumeProvisioner,
    release_namespace: str,
    tmp_path: Path,
) -> None:
    from kubernetes import client

    missing = [role for role in ("hub", "proxy") if role not in on_real_node.images]
    if missing:
        pytest.skip(f"the {' and '.join(missing)} image(s) are not built: make images (scripts/build-images.sh)")
    core = client.CoreV1Api(kube.admin)
    started = time.monotonic()
    student = f"student-{uuid.uuid4().hex[:6]}"
    password = secrets.token_urlsafe(PASSWORD_BYTES)
    images = {role: on_real_node.images[role].ref for role in ("hub", "proxy", "notebook")}
    values = release_values(images, student, password)
    student_ns = namespace_name(student)
    chart_dir = chart_with_z2jh(tmp_path)
    with (
        helm.Config(kubeconfig_path=kube.kubeconfig, namespace=release_namespace) as cfg,
        helm.Chart.load(chart_dir) as chart,
    ):
        installed = cfg.install(chart, RELEASE, values, namespace=release_namespace, timeout=INSTALL_TIMEOUT)
        try:
            assert installed.get("status") == "deployed", {k: v for k, v in installed.items() if k != "manifest"}
            try:
                wait_until(
                    "the hub and proxy pods to be Ready",
                    lambda: _pods_ready(core, release_namespace, ["hub", "proxy"]),
                    timeout=INSTALL_TIMEOUT,
                )
            except Exception as exc:
                raise AssertionError(f"{exc}\n{namespace_report(kube.admin, release_namespace)}") from exc
            installed_at = time.monotonic()
            public = core.read_namespaced_service("proxy-public", release_namespace).spec.cluster_ip
            pods = {p.metadata.labels["component"]: p for p in core.list_namespaced_pod(release_namespace).items}
            assert pods["hub"].spec.containers[0].image == images["hub"]
            assert pods["proxy"].spec.containers[0].image == images["proxy"]
            assert pods["proxy"].spec.containers[0].security_context.run_as_user == 65534  # Z2JH's, our image's user
            browser = Student(f"http://{public}", student)
            assert browser.login(password + "x") == 403  # the authenticator is a real one
            assert browser.login(password) == 302
            _spawn_and_run(kube, browser, student_ns, tmp_path, release_namespace)
            status, answer = browser.api("DELETE", f"/users/{student}/server")
            assert status in (202, 204), answer
            wait_until(
                f"every pod in {student_ns} to be deleted",
                lambda: not core.list_namespaced_pod(student_ns).items,
                timeout=180,
            )
        finally:
            cfg.uninstall(RELEASE, timeout=INSTALL_TIMEOUT)
            delete_namespaces(core, [student_ns], timeout=180)
    wait_until(
        f"the release's pods in {release_namespace} to be deleted",
        lambda: not core.list_namespaced_pod(release_namespace).items,
        timeout=180,
    )
    rbac = client.RbacAuthorizationV1Api(kube.admin)
    cluster_wide = [*rbac.list_cluster_role().items, *rbac.list_cluster_role_binding().items]
    assert not [item.metadata.name for item in cluster_wide if release_namespace in item.metadata.name]
    assert not [ns for ns in core.list_namespace().items if ns.metadata.name == student_ns]
    print(
        f"\nrelease on the node: hub and proxy Ready {installed_at - started:.0f} s after install began, "
        f"{time.monotonic() - started:.0f} s in all"
    )


def _spawn_and_run(kube: Kube, browser: Student, namespace: str, tmp_path: Path, release_namespace: str) -> None:
    from kubernetes import client

    core = client.CoreV1Api(kube.admin)
    user = browser.name
    logs = PodLogs(core, namespace, "component=singleuser-server", tmp_path / "notebook-logs")
    logs.start()
    try:
        status, answer = browser.api("POST", f"/users/{user}/server", {"profile": "cpu"})
        assert status in (201, 202), answer

        def settled() -> str | None:
            """ "ready", "gone" (the hub gave up on the spawn and dropped the server), or None: still pending."""
            status, model = browser.api("GET", f"/users/{user}")
            assert status == 200, model
            server = (model.get("servers") or {}).get("")
            return "gone" if server is None else ("ready" if server.get("ready") else None)

        outcome = wait_until(f"{user}'s server to be ready", settled, timeout=SPAWN_TIMEOUT, interval=2)
        assert outcome == "ready", f"the hub gave up on {user}'s spawn"
    except Exception as exc:
        hub_logs = core.read_namespaced_pod_log(
            core.list_namespaced_pod(release_namespace, label_selector="component=hub").items[0].metadata.name,
            release_namespace,
            tail_lines=40,
        )
        report = f"{namespace_report(kube.admin, namespace)}\n{logs.tails()}\n--- hub ---\n{hub_logs}"
        raise AssertionError(f"{exc}\n{report}") from exc
    finally:
        logs.done.set()
    [pod] = core.list_namespaced_pod(namespace, label_selector="component=singleuser-server").items
    env = {e.name: e.value for e in pod.spec.containers[0].env or []}
    hub_api = urllib.parse.urlsplit(env["JUPYTERHUB_API_URL"])
    assert hub_api.hostname == f"hub.{release_namespace}.svc.cluster.local", env["JUPYTERHUB_API_URL"]
    status, body = browser.request("GET", f"{browser.url}/user/{user}/api/status")
    assert status == 200, body[:300]  # the notebook's Jupyter server, through Z2JH's proxy

    kernel = Kernel(browser, user)
    ran = kernel.run(
        "from occam import start_cluster\n"
        "cluster = start_cluster(n=1, timeout=300, progress=False)\n"
        "print('executors', cluster.executor_count())\n"
        "print('sum', cluster.spark.sparkContext.parallelize(range(100), 4).sum())\n"
        "cluster.stop()\n",
        timeout=420,
    )
    assert "executors 1" in ran and "sum 4950" in ran, ran
