"""A student's whole path on the real node: the hub spawns the notebook pod, whose kernel starts executors.

A real ``jupyterhub`` with OccamSpawner and the real proxy runs on this machine with the hub's least-privilege
account (:mod:`tests.hub.hubprocess`), its API on the node's gateway, where pods reach it. Notebook and
executors run the image admins deploy, built from ``images/notebook/Dockerfile`` by podman (``make images``).
So, unlike the hub tier (whose notebook containers run on kwok's fake nodes and are stood in for on
loopback), the notebook pod's own ``jupyterhub-singleuser`` serves the student.

The spawner makes the student's own work volume (a claim bound by the node's dynamic provisioner,
:mod:`.provisioner`), as the chart does by default. Through the hub's proxy, with a service token
(``access:servers``), the test opens a kernel in the notebook and runs ``start_cluster(n=1)`` there, then a
``fit`` whose dataset and checkpoints live on that volume: the notebook's service account creates the executor pod through the
API server (``kubernetes.default.svc``, :mod:`.clusterservices`), the executor registers with the driver in
the notebook pod, and the Spark UI answers at ``cluster.dashboard_link`` through the hub's proxy and the
image's jupyter-server-proxy, as do TensorBoard and the MLflow UI started from the kernel
(``occam.tensorboard()``, ``occam.mlflow_ui()``) and the trained model, published and served
(``occam.models.serve``: a Deployment and ClusterIP Service in the student's namespace, routed by kube-proxy,
reached through the notebook's jupyter-server-proxy behind the hub's login and its own token; another user
gets in only once the student shares the server through JupyterHub). Stopping the service leaves no pod of
it, and stopping the server no pod at all. All of it with the namespace's
NetworkPolicies enforced by kube-network-policies (:mod:`.netpolicy`): the notebook pod and its executor
reach each other only as the policies allow (the hub and the cluster services are on this machine, whose
own traffic the enforcer does not filter).

One executor: the notebook pod and the executor pod take one core each, and this machine's node has two.
"""

from __future__ import annotations

import http.client
import json
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from spawner.namespace import namespace_name
from tests.hub.hubprocess import CHP_INSTALL, HubProcess, find_chp, hub_account_kubeconfig
from tests.kubernetes.fixtures import Kube
from tests.kubernetes.student import namespace_report, wait_until

from .kernel import Kernel
from .kubeproxy import ServiceProxy
from .netpolicy import PolicyEnforcer
from .nodeconfig import API_SERVICE_IP, GATEWAY
from .podlogs import PodLogs
from .provisioner import STORAGE_CLASS, VolumeProvisioner
from .realnode import RealNode

SPAWN_TIMEOUT = 300
WORK_PATH = "/home/jovyan/occam-work"


def spawner_config(image: str) -> str:
    return f"""
from spawner.profiles import cpu_profile

# The pods reach the hub's API on the node's gateway (the hub tier keeps it on loopback).
c.JupyterHub.hub_ip = {GATEWAY!r}
c.JupyterHub.hub_connect_ip = {GATEWAY!r}
c.Spawner.http_timeout = {SPAWN_TIMEOUT}
c.Spawner.start_timeout = {SPAWN_TIMEOUT}
c.OccamSpawner.image = {image!r}
c.OccamSpawner.executor_image = {image!r}
c.OccamSpawner.hub_namespace = "occam-hub"
c.OccamSpawner.api_server_cidrs = ["{API_SERVICE_IP}/32"]
# The node's DNS is a host process on the gateway, not kube-dns pods: named by address, as an admin names
# NodeLocal DNSCache's (occam.network.dnsCIDRs).
c.OccamSpawner.dns_cidrs = ["{GATEWAY}/32"]
# Each student's own work volume from the node's dynamic provisioner, as the chart makes it by default.
c.OccamSpawner.work_storage_class = {STORAGE_CLASS!r}
c.OccamSpawner.work_storage_size = "1Gi"
c.OccamSpawner.shared_work_path = {WORK_PATH!r}
c.OccamSpawner.course_limits = {{"max_executors": 2, "cpu": "4", "memory": "8Gi", "gpus": 0}}
c.OccamSpawner.profile_list = [cpu_profile("CPU", cpu=1, memory="2G", default=True)]
"""


@pytest.fixture
def node_hub(
    on_real_node: RealNode,
    policy_enforcer: PolicyEnforcer,
    volume_provisioner: VolumeProvisioner,
    kube: Kube,
    tmp_path: Path,
) -> Iterator[HubProcess]:
    # kube-network-policies enforces the student namespace's NetworkPolicies (default deny): the
    # notebook's executors reach its driver, and the kernel the API server, only as the policies allow.
    chp = find_chp()
    if chp is None:
        pytest.skip(f"the hub needs configurable-http-proxy: run `{CHP_INSTALL}`")
    kubeconfig = hub_account_kubeconfig(kube.admin, tmp_path / "hub.kubeconfig")
    workdir = tmp_path / "hub"
    workdir.mkdir()
    config = spawner_config(on_real_node.images["notebook"].ref)
    with HubProcess(workdir, kubeconfig, config, chp=chp, timeout=SPAWN_TIMEOUT) as hub:
        yield hub


@pytest.fixture
def student(kube: Kube, node_hub: HubProcess) -> Iterator[str]:
    with node_hub.new_student(kube.admin) as name:
        yield name


def _anonymous_get(url: str) -> tuple[int, str]:
    """The status and ``Location`` of a GET with no credentials, redirects not followed."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""))
        response = connection.getresponse()
        return response.status, response.getheader("Location") or ""
    finally:
        connection.close()


def _post_as(url: str, body: Any, headers: dict[str, str]) -> tuple[int, bytes]:
    """POST ``body`` as JSON with exactly ``headers`` (no hub service token), redirects not followed."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        connection.request(
            "POST", parts.path, json.dumps(body).encode(), {**headers, "Content-Type": "application/json"}
        )
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_a_spawned_notebook_on_the_node_starts_executors_and_shows_its_web_uis_through_the_hub(
    kube: Kube,
    node_hub: HubProcess,
    student: str,
    on_real_node: RealNode,
    volume_provisioner: VolumeProvisioner,
    service_proxy: ServiceProxy,
    tmp_path: Path,
):
    from kubernetes import client

    core = client.CoreV1Api(kube.admin)
    namespace = namespace_name(student)
    logs = PodLogs(core, namespace, "component=singleuser-server", tmp_path / "notebook-logs")
    logs.start()
    try:
        node_hub.start_server(student)
        node_hub.wait_ready(student)
    except Exception as exc:
        report = f"{namespace_report(kube.admin, namespace)}\n{logs.tails()}\n--- hub ---\n{node_hub.log_tail(30)}"
        raise AssertionError(f"{exc}\n{report}") from exc
    finally:
        logs.done.set()
    [pod] = core.list_namespaced_pod(namespace, label_selector="component=singleuser-server").items
    assert pod.spec.node_name == on_real_node.name and pod.status.phase == "Running"
    assert pod.spec.containers[0].image == on_real_node.images["notebook"].ref
    status, body = node_hub.request("GET", f"{node_hub.url}/user/{student}/api/status")
    assert status == 200, body[:300]  # the image's Jupyter server, through the hub's proxy

    kernel = Kernel(node_hub, student)
    started = kernel.run(
        "from occam import start_cluster\n"
        "cluster = start_cluster(n=1, timeout=300, progress=False)\n"
        "print('executors', cluster.executor_count())\n"
        "print('sum', cluster.spark.sparkContext.parallelize(range(100), 4).sum())\n"
        "print('ui', cluster.dashboard_link)\n",
        timeout=420,
    )
    assert "executors 1" in started and "sum 4950" in started, started
    # A fit: the dataset is written by the executor and read by the driver on the student's own work volume,
    # the claim the spawner made and the provisioner bound; rank 0's checkpoints go there too.
    trained = kernel.run(
        "from occam import Dataset\n"
        "from occam.examples.digits import build_cnn, load_digits\n"
        "x, y, x_test, y_test = load_digits()\n"
        "train = Dataset.from_numpy(x, y, spark=cluster.spark)\n"
        "result = cluster.fit(build_cnn, train, epochs=3, batch_size=32, progress=False, tensorboard=True)\n"
        "print('accuracy', result.model.evaluate(x_test, y_test, verbose=0)[1])\n"
        "import os; print('work', os.path.realpath(train.path))\n",
        timeout=600,
    )
    accuracy = float(trained.split("accuracy ", 1)[1].split()[0])
    assert accuracy >= 0.8, trained
    assert f"work {WORK_PATH}/" in trained, trained
    [claim] = core.list_namespaced_persistent_volume_claim(namespace).items
    assert claim.status.phase == "Bound" and claim.spec.storage_class_name == volume_provisioner.storage_class
    [executor] = core.list_namespaced_pod(namespace, label_selector="spark-role=executor").items
    assert executor.spec.node_name == on_real_node.name
    assert [ref.name for ref in executor.metadata.owner_references] == [pod.metadata.name]
    link = started.split("ui ", 1)[1].split()[0]
    assert link.startswith(f"/user/{student}/proxy/")
    status, body = node_hub.request("GET", f"{node_hub.url}{link}")
    assert status == 200 and b"Spark Jobs" in body, body[:300]

    assert "stopped" in kernel.run("cluster.stop()\nprint('stopped')\n", timeout=120)

    # TensorBoard and the MLflow UI, started from the notebook, answer through the hub's proxy too.
    tracked = kernel.run(
        "import occam\n"
        "tb = occam.tensorboard(timeout=240)\n"
        "ui = occam.mlflow_ui(timeout=240)\n"
        "print('tb', tb.link)\n"
        "print('mlflow', ui.link)\n",
        timeout=540,
    )
    links = {name: tracked.split(f"{name} ", 1)[1].split()[0] for name in ("tb", "mlflow")}
    assert all(link.startswith(f"/user/{student}/proxy/") for link in links.values()), tracked
    for link in links.values():  # without the student's (or a permitted) token: the hub's login, not the UI
        status, location = _anonymous_get(f"{node_hub.url}{link}")
        redirected_to_login = status in (302, 303) and ("oauth" in location or "login" in location)
        assert redirected_to_login or status in (401, 403), (status, location)
    # The fit's TensorBoard run and its MLflow run (recorded by default), read through the hub.
    status, body = node_hub.request("GET", f"{node_hub.url}{links['tb'].rstrip('/')}/data/runs")
    assert status == 200 and json.loads(body), body[:300]
    mlflow_api = f"{node_hub.url}{links['mlflow'].rstrip('/')}/ajax-api/2.0/mlflow"
    status, body = node_hub.request("GET", f"{mlflow_api}/experiments/search?max_results=100")
    assert status == 200, body[:300]
    ids = [e["experiment_id"] for e in json.loads(body)["experiments"]]
    status, body = node_hub.request("POST", f"{mlflow_api}/runs/search", {"experiment_ids": ids})
    assert status == 200, body[:300]
    assert [r["info"]["status"] for r in json.loads(body)["runs"]] == ["FINISHED"], body[:500]
    assert "stopped" in kernel.run("tb.stop()\nui.stop()\nprint('stopped')\n", timeout=120)

    # The trained model, published to the student's store (on the work volume) and served from the notebook as
    # a Deployment and Service of its namespace: through the hub, with the hub's login and the service's own
    # token, it predicts what model.predict does.
    served = kernel.run(
        "import json\n"
        "import occam.models\n"
        "occam.models.publish(result, 'digits-node', labels=[str(d) for d in range(10)])\n"
        "service = occam.models.serve('digits-node', timeout=240)\n"
        "print('kind', type(service).__name__)\n"
        "print('base', service.base_path)\n"
        "print('secret', service.token)\n"
        "print('expected', json.dumps(result.model.predict(x_test[:4], verbose=0).argmax(axis=1).tolist()))\n"
        "print('instances', json.dumps(x_test[:4].tolist()))\n",
        timeout=420,
    )
    facts = {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in served.splitlines() if " " in line}
    assert facts.get("kind") == "PodModelService", served[-3000:]  # the kernel's traceback, where serving failed
    assert facts["base"] == f"/user/{student}/proxy/absolute/occam-serve-digits-node-v1:80", served[-2000:]
    [serving_pod] = core.list_namespaced_pod(
        namespace, label_selector="app.kubernetes.io/component=model-service"
    ).items
    assert serving_pod.spec.node_name == on_real_node.name
    (replica_set,) = serving_pod.metadata.owner_references  # the Deployment's ReplicaSet
    assert replica_set.name.startswith("occam-serve-digits-node-v1-")
    predict = f"{node_hub.url}{facts['base']}/v2/models/digits-node/predict/"
    body = {"instances": json.loads(facts["instances"])}
    service_token = {"X-Occam-Token": facts["secret"]}
    status, answer = node_hub.request("POST", predict, body, headers=service_token)
    assert status == 200, answer[:500]
    labels = [int(p["label"]) for p in json.loads(answer)["predictions"]]
    assert labels == json.loads(facts["expected"])
    status, answer = node_hub.request("POST", predict, body)  # the hub's login alone: not the service's token
    assert status in (401, 403), answer[:300]
    status, location = _anonymous_get(predict)  # nothing at all: the hub's login
    assert status in (302, 303, 401, 403) and (status in (401, 403) or "login" in location or "oauth" in location)
    # Another user, with their own JupyterHub token and the service's: refused, until the student shares the
    # server with them through JupyterHub (what a share grants: access:servers!server=<student>/).
    other = f"other-{uuid.uuid4().hex[:6]}"
    node_hub.api("POST", f"/users/{other}")
    other_token = node_hub.api("POST", f"/users/{other}/tokens", {"note": "model service test"})["token"]
    as_other = {**service_token, "Authorization": f"token {other_token}"}
    status, answer = _post_as(predict, body, as_other)
    assert status in (302, 303, 401, 403), (status, answer[:300])
    node_hub.api("POST", f"/shares/{student}/", {"user": other})
    # A token the notebook server has not seen: it caches what the hub said of the first one for minutes.
    fresh_token = node_hub.api("POST", f"/users/{other}/tokens", {"note": "model service test, shared"})["token"]
    status, answer = _post_as(predict, body, {**service_token, "Authorization": f"token {fresh_token}"})
    assert status == 200, answer[:500]
    assert [int(p["label"]) for p in json.loads(answer)["predictions"]] == labels
    assert "stopped" in kernel.run("service.stop()\nprint('stopped')\n", timeout=120)
    assert not core.list_namespaced_pod(namespace, label_selector="app.kubernetes.io/component=model-service").items
    node_hub.stop_server(student)
    wait_until(
        f"every pod in {namespace} to be deleted",
        lambda: not core.list_namespaced_pod(namespace).items,
        timeout=180,
    )
