"""``occam submit --backend kubernetes`` against the real API server, with the student's own credentials.

spark-submit really runs (a JVM here, talking to the API server on loopback with the student's token
kubeconfig) and really creates the driver pod, Spark's Service and conf ConfigMap; Occam then creates
the job's ConfigMap and Secret. The driver pod lands on a kwok fake node, where nothing runs: so the
tests check the objects the API server holds (the driver pod's spec, ownership, the conf Spark ships to
the driver), not a running job, and submit with ``--detach``. Executor pods are never created here,
since only a running driver makes them; that executors are owned by the driver is checked in the conf
(``spark.kubernetes.driver.pod.name``), which is how Spark decides it.
"""

from __future__ import annotations

import base64
import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from occam.kubernetes import objects
from occam.kubernetes.job_objects import AUTH_MOUNT, DRIVER_KEY, JOB_DIR

from .student import ROLE, STUDENT_RULES, StudentNamespace, wait_until

IMAGE = "registry.example/occam-executor:test"  # never pulled: nothing runs on kwok's nodes
SCRIPT = "print('hello from the driver')\n"
SPARK_WAIT_SECONDS = 240  # spark-submit's JVM start on a busy 2-core machine


@pytest.fixture
def java() -> None:
    import shutil

    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("spark-submit needs a Java runtime on PATH")


def role_allows_patch(rules: list[dict[str, Any]]) -> bool:
    """Whether ``rules`` let spark-submit apply its driver Service and ConfigMap (server-side apply is a PATCH)."""
    granted = {resource for rule in rules if "patch" in rule["verbs"] for resource in rule["resources"]}
    return {"services", "configmaps"} <= granted


@pytest.fixture
def student_may_submit() -> None:
    if not role_allows_patch(STUDENT_RULES):
        pytest.skip(
            "spawner.namespace.NOTEBOOK_RULES does not allow 'patch' on services and configmaps, which "
            "spark-submit's cluster mode needs (it applies the driver's Service and ConfigMap server-side)"
        )


def occam(namespace: StudentNamespace, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The occam command in a notebook pod's terminal: the student's kubeconfig and OCCAM_K8S_* only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCCAM_")}
    env.update(
        {
            "KUBECONFIG": str(namespace.kubeconfig),
            "OCCAM_K8S_NAMESPACE": namespace.name,
            "OCCAM_K8S_POD_NAME": "jupyter-ada",
            "OCCAM_K8S_EXECUTOR_IMAGE": IMAGE,
            "OCCAM_K8S_USER": "ada",
        }
    )
    return subprocess.run(
        [sys.executable, "-m", "occam.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=SPARK_WAIT_SECONDS,
    )


def owners(obj: Any) -> list[tuple[str, str]]:
    return [(ref.kind, ref.uid) for ref in obj.metadata.owner_references or []]


@pytest.mark.usefixtures("java", "student_may_submit")
def test_submit_creates_the_driver_pod_as_specified_and_stop_removes_the_job(namespace, admin, tmp_path):
    (tmp_path / "train.py").write_text(SCRIPT)
    submitted = occam(
        namespace,
        *("submit", "train.py", "--backend", "kubernetes", "--detach", "--name", "digits1", "-n", "2"),
        *("--memory", "1g", "--service-account", namespace.service_account, "--", "--epochs", "3"),
        cwd=tmp_path,
    )
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    assert "submitted job digits1: driver pod digits1-driver" in submitted.stdout
    assert "occam stop digits1" in submitted.stdout

    pod = admin.read_namespaced_pod("digits1-driver", namespace.name)
    uid = pod.metadata.uid
    labels = pod.metadata.labels
    assert labels[objects.CLUSTER_LABEL] == "digits1"
    assert labels[objects.COMPONENT_LABEL] == "driver"
    assert labels[objects.USER_LABEL] == "ada"
    assert labels["spark-role"] == "driver"
    assert pod.spec.service_account_name == namespace.service_account
    assert pod.spec.automount_service_account_token is True  # the driver creates executors with this token
    assert pod.spec.security_context.run_as_non_root is True
    [container] = pod.spec.containers
    assert container.image == IMAGE
    # Sized like an executor: 1 core, 1g heap plus Spark's 384Mi overhead; no GPU.
    assert container.resources.requests == {"cpu": "1", "memory": "1408Mi"}
    assert container.resources.limits == {"cpu": "1", "memory": "1408Mi"}
    assert f"local://{JOB_DIR}/train.py" in container.args
    assert container.args[-2:] == ["--epochs", "3"]
    assert container.security_context.allow_privilege_escalation is False
    mounts = {m.mount_path: m.name for m in container.volume_mounts}
    volumes = {v.name: v for v in pod.spec.volumes}
    assert volumes[mounts[JOB_DIR]].config_map.name == "digits1-job"
    assert volumes[mounts[AUTH_MOUNT]].secret.secret_name == "digits1-spark-auth"
    assert not [e for e in container.env or [] if e.name == "_SPARK_AUTH_SECRET"]  # never a plain value

    # The job's script and RPC key, made by occam with the student's token and owned by the driver pod.
    configmap = admin.read_namespaced_config_map("digits1-job", namespace.name)
    assert configmap.data == {"train.py": SCRIPT}
    assert owners(configmap) == [("Pod", uid)]
    secret = admin.read_namespaced_secret("digits1-spark-auth", namespace.name)
    assert owners(secret) == [("Pod", uid)]
    shared = base64.b64decode(secret.data[objects.AUTH_SECRET_KEY]).decode()
    assert base64.b64decode(secret.data[DRIVER_KEY]) == base64.b64decode(shared)

    # The conf Spark ships to the driver: cluster mode, executors owned by this pod, RPC secret by reference.
    spark_maps = [
        cm
        for cm in admin.list_namespaced_config_map(namespace.name).items
        if cm.metadata.name != "digits1-job" and "spark.properties" in (cm.data or {})
    ]
    assert len(spark_maps) == 1 and owners(spark_maps[0]) == [("Pod", uid)]
    properties = spark_maps[0].data["spark.properties"]
    assert "spark.kubernetes.driver.pod.name=digits1-driver" in properties
    assert "spark.kubernetes.executor.secretKeyRef._SPARK_AUTH_SECRET=digits1-spark-auth\\:spark-auth-secret" in (
        properties
    )
    assert f"spark.authenticate.secret.driver.file={AUTH_MOUNT}/{DRIVER_KEY}" in properties
    assert "spark.executor.instances=2" in properties
    assert shared not in properties and "spark.authenticate.secret=" not in properties
    services = admin.list_namespaced_service(namespace.name).items
    assert [owners(s) for s in services] == [[("Pod", uid)]]

    stopped = occam(namespace, "stop", "digits1", cwd=tmp_path)
    assert stopped.returncode == 0, stopped.stderr

    def job_objects() -> list[str]:
        left = [f"pod/{p.metadata.name}" for p in admin.list_namespaced_pod(namespace.name).items]
        left += [f"secret/{s.metadata.name}" for s in admin.list_namespaced_secret(namespace.name).items]
        left += [f"service/{s.metadata.name}" for s in admin.list_namespaced_service(namespace.name).items]
        left += [
            f"configmap/{c.metadata.name}"
            for c in admin.list_namespaced_config_map(namespace.name).items
            if c.metadata.name != "kube-root-ca.crt"
        ]
        return left

    wait_until("the garbage collector to delete the job's objects", lambda: job_objects() == [], timeout=90)


@pytest.mark.usefixtures("java", "student_may_submit")
def test_submit_over_the_pod_quota_is_refused_before_anything_is_made(namespace, admin, tmp_path):
    (tmp_path / "train.py").write_text(SCRIPT)
    admin.create_namespaced_resource_quota(
        namespace.name, {"metadata": {"name": "pods"}, "spec": {"hard": {"pods": "2"}}}
    )
    wait_until(
        "the resourcequota controller to fill in the status of ResourceQuota 'pods'",
        lambda: (admin.read_namespaced_resource_quota("pods", namespace.name).status.hard or {}).get("pods"),
    )
    refused = occam(
        namespace,
        *("submit", "train.py", "--backend", "kubernetes", "--detach", "--name", "big", "-n", "2"),
        *("--service-account", namespace.service_account),
        cwd=tmp_path,
    )
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "you asked for 3 executor pods; your quota allows 2" in refused.stderr
    assert admin.list_namespaced_pod(namespace.name).items == []


@pytest.mark.usefixtures("java")
def test_a_role_without_patch_gets_an_error_naming_the_missing_permission(namespace, kube, admin, tmp_path):
    from kubernetes import client

    (tmp_path / "train.py").write_text(SCRIPT)
    rules = copy.deepcopy(STUDENT_RULES)
    for rule in rules:
        rule["verbs"] = [verb for verb in rule["verbs"] if verb != "patch"]
    client.RbacAuthorizationV1Api(kube.admin).patch_namespaced_role(ROLE, namespace.name, {"rules": rules})
    refused = occam(
        namespace,
        *("submit", "train.py", "--backend", "kubernetes", "--detach", "--name", "noperm"),
        *("--service-account", namespace.service_account),
        cwd=tmp_path,
    )
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "your Role must allow patch on services and configmaps" in refused.stderr
    # Spark deletes the driver pod it made when the rest of the submission fails.
    wait_until("the refused job's driver pod to go", lambda: admin.list_namespaced_pod(namespace.name).items == [])
