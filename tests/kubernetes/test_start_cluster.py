"""start_cluster(backend="kubernetes") for real: the notebook process is a Spark driver in client mode,
and Spark itself creates the executor pods through the API server, with the student's token.

The driver runs in a separate process (tests/kubernetes/k8s_driver.py), as a notebook kernel would, with
``OCCAM_K8S_*`` set as the spawner sets them and ``KUBECONFIG`` holding the student's token. kwok's nodes
report the executor pods Running but run no container, so executors never register: each start here
ends in ClusterStartError after its timeout (or at once, when the scheduler says a pod cannot be placed).
What is asserted is what the API server held while the driver waited, the errors the user sees, and
that nothing is left afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .student import wait_until
from .test_backend import EXECUTOR_IMAGE, GPU_SELECTOR, GPU_TOLERATIONS, OCCAM_SELECTOR

DRIVER = str(Path(__file__).with_name("k8s_driver.py"))
#: A shared work volume as the spawner passes it (kwok mounts nothing, so the server need not exist).
# An inline CSI volume (csi-driver-nfs): Pod Security's restricted level refuses inline nfs volumes.
SHARED_VOLUME = {
    "csi": {"driver": "nfs.csi.k8s.io", "volumeAttributes": {"server": "nfs.example.org", "share": "/ada"}}
}
SHARED_PATH = "/srv/occam-work"


def start_driver(
    kube, namespace, notebook_pod, *, gpu_settings: bool = True, shared: bool = False, **options
) -> subprocess.Popen:
    env = dict(os.environ)
    host = kube.admin.configuration.host
    env.update(
        {
            "KUBECONFIG": str(namespace.kubeconfig),
            "OCCAM_K8S_NAMESPACE": namespace.name,
            "OCCAM_K8S_POD_NAME": notebook_pod["metadata"]["name"],
            "OCCAM_K8S_POD_UID": notebook_pod["metadata"]["uid"],
            # The driver runs on this machine, on loopback; executors would connect back here.
            "OCCAM_K8S_POD_IP": "127.0.0.1",
            "OCCAM_K8S_EXECUTOR_IMAGE": EXECUTOR_IMAGE,
            "OCCAM_K8S_USER": "ada",
            "OCCAM_K8S_API_SERVER": host,
        }
    )
    if gpu_settings:
        env["OCCAM_K8S_GPU_NODE_SELECTOR"] = json.dumps(GPU_SELECTOR)
        env["OCCAM_K8S_GPU_TOLERATIONS"] = json.dumps(GPU_TOLERATIONS)
    if shared:
        env["OCCAM_K8S_SHARED_VOLUME"] = json.dumps(SHARED_VOLUME)
        env["OCCAM_K8S_SHARED_PATH"] = SHARED_PATH
    options.setdefault("name", f"occam-k8s-{os.getpid()}-{int(time.monotonic() * 1000) % 100000}")
    proc = subprocess.Popen(
        [sys.executable, DRIVER, json.dumps(options)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert json.loads(proc.stdout.readline())["started"] == options["name"]
    proc.cluster_name = options["name"]
    return proc


def executor_pods(core, namespace: str, cluster: str) -> list[Any]:
    return core.list_namespaced_pod(namespace, label_selector=f"{OCCAM_SELECTOR},occam.io/cluster={cluster}").items


def test_executor_pods_have_the_expected_spec_and_go_when_start_fails(kube, namespace, admin, notebook):
    driver = start_driver(kube, namespace, notebook, shared=True, n=2, gpu=True, timeout=25)
    pods = wait_until(
        "Spark's driver to create 2 executor pods",
        lambda: (p := executor_pods(admin, namespace.name, driver.cluster_name)) and len(p) == 2 and p,
    )
    pod = admin.api_client.sanitize_for_serialization(pods[0])
    labels = pod["metadata"]["labels"]
    assert labels["occam.io/cluster"] == driver.cluster_name and labels["occam.io/user"] == "ada"
    assert labels["spark-role"] == "executor"
    owners = pod["metadata"]["ownerReferences"]
    assert [(o["kind"], o["name"], o["uid"]) for o in owners] == [("Pod", "jupyter-ada", notebook["metadata"]["uid"])]
    container = pod["spec"]["containers"][0]
    assert container["image"] == EXECUTOR_IMAGE
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["resources"]["requests"]["cpu"] == "1"
    assert pod["spec"]["nodeSelector"] == GPU_SELECTOR
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["spec"]["tolerations"]
    # The shared work volume (dataset cache, checkpoints) is mounted read-write where the notebook has it.
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["occam-shared-work"] == {"name": "occam-shared-work", **SHARED_VOLUME}
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["occam-shared-work"]["mountPath"] == SHARED_PATH
    assert not mounts["occam-shared-work"].get("readOnly")
    env = {e["name"]: e for e in container["env"]}
    # The RPC secret reaches executors by reference to the cluster's Secret, never as a plain value.
    assert "valueFrom" in env["_SPARK_AUTH_SECRET"] and "value" not in env["_SPARK_AUTH_SECRET"]
    assert env["SPARK_DRIVER_URL"]["value"].startswith("spark://CoarseGrainedScheduler@127.0.0.1:7078")

    result = json.loads(driver.stdout.readline())
    assert result["error"] == "ClusterStartError"
    assert "0 of 2 executors registered within 25 s" in result["message"]
    assert "executor pods:" in result["message"]
    driver.wait(timeout=60)
    wait_until(
        "the failed cluster's pods and Secret to be deleted",
        lambda: not admin.list_namespaced_pod(
            namespace.name, label_selector=f"occam.io/cluster={driver.cluster_name}"
        ).items
        and not admin.list_namespaced_secret(
            namespace.name, label_selector=f"occam.io/cluster={driver.cluster_name}"
        ).items,
    )


def test_deleting_the_notebook_pod_garbage_collects_its_executors(kube, namespace, admin, notebook):
    driver = start_driver(kube, namespace, notebook, n=2, timeout=120)
    wait_until("2 executor pods", lambda: len(executor_pods(admin, namespace.name, driver.cluster_name)) == 2)
    admin.delete_namespaced_pod("jupyter-ada", namespace.name)
    # The real garbage collector of kube-controller-manager follows the ownerReferences Spark set.
    wait_until(
        "the garbage collector to delete the executor pods",
        lambda: not executor_pods(admin, namespace.name, driver.cluster_name),
        timeout=60,
    )
    driver.kill()
    driver.wait(timeout=30)


def test_a_gpu_request_no_node_can_take_fails_fast_with_the_schedulers_reason(kube, namespace, admin, notebook):
    started = time.monotonic()
    # Without the GPU tolerations the tainted GPU nodes refuse the pods: the scheduler says why.
    driver = start_driver(kube, namespace, notebook, n=1, gpu=True, timeout=300, gpu_settings=False)
    result = json.loads(driver.stdout.readline())
    assert time.monotonic() - started < 120  # not the 300 s timeout
    assert result["error"] == "ClusterStartError"
    assert "cannot be scheduled" in result["message"]
    assert "nvidia.com/gpu" in result["message"]
    driver.wait(timeout=60)
    wait_until("no pod left", lambda: not executor_pods(admin, namespace.name, driver.cluster_name))


def test_beyond_the_quota_fails_before_anything_is_created(kube, namespace, admin, notebook):
    admin.create_namespaced_resource_quota(
        namespace.name, {"metadata": {"name": "pods"}, "spec": {"hard": {"pods": "4"}}}
    )
    wait_until(
        "the quota status",
        lambda: (admin.read_namespaced_resource_quota("pods", namespace.name).status.hard or {}).get("pods"),
    )
    driver = start_driver(kube, namespace, notebook, n=5, timeout=60)
    result = json.loads(driver.stdout.readline())
    assert result["error"] == "ConfigError"
    assert (
        "you asked for 5 executor pods; your quota allows 4 and 1 is in use; ask for n=3 or fewer" in result["message"]
    )
    driver.wait(timeout=60)
    assert not admin.list_namespaced_secret(namespace.name, label_selector=OCCAM_SELECTOR).items
    assert not executor_pods(admin, namespace.name, driver.cluster_name)
