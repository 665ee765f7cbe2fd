"""``occam submit --backend kubernetes`` on the real node: the batch job's driver pod runs.

The student submits from a terminal (a process here with the notebook pod's environment and the student's
token). spark-submit creates the driver pod; the kubelet runs it in the notebook image (images/notebook/Dockerfile); the driver
reaches the API server as ``kubernetes.default.svc`` with the student's service account and creates its
executor pods, which connect back to it through its headless Service's name (both served by
:mod:`.clusterservices`, a cluster's DNS and kube-proxy here). ``occam submit`` streams the driver's log and
returns its exit status; without ``--keep`` the job leaves no pod.

One executor, not two: the driver pod takes a core of its own (it is sized like an executor), and this
machine's node has two.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

from tests.kubernetes.student import wait_until

from .driverproc import image_python, shared_folder, student_env
from .podlogs import PodLogs

JOB_TIMEOUT = 900


def submit(node, namespace, notebook, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = student_env(node, namespace, notebook, shared_folder(tmp_path))
    # The image's venv path: the driver pod's Python is the submitter's sys.executable (.driverproc.image_python).
    command = image_python("-m", "occam.cli", "submit", "--backend", "kubernetes", "-n", "1", "--memory", "1g")
    return subprocess.run(
        [*command, "--service-account", namespace.service_account, "--timeout", "300", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=JOB_TIMEOUT,
    )


def no_pods_of(admin, namespace: str, job: str) -> bool:
    return not admin.list_namespaced_pod(namespace, label_selector=f"occam.io/cluster={job}").items


def test_a_batch_job_trains_in_its_driver_pod_and_its_log_and_exit_status_reach_the_submitter(
    on_real_node, admin, namespace, notebook, tmp_path
):
    job = f"batch-{uuid.uuid4().hex[:6]}"
    (tmp_path / "executor-logs").mkdir()
    logs = PodLogs(admin, namespace.name, f"occam.io/cluster={job},spark-role=executor", tmp_path / "executor-logs")
    logs.start()
    try:
        done = submit(
            on_real_node,
            namespace,
            notebook,
            tmp_path,
            *("--name", job, "-m", "occam.examples.train_digits", "--", "--epochs", "3", "--min-accuracy", "0.85"),
        )
    finally:
        logs.done.set()
    output = done.stdout + done.stderr + logs.tails()
    assert done.returncode == 0, output
    assert "cluster " in output and ": 1 executors" in output  # start_cluster() adopted the job's executor
    assert "epoch 3:" in output, output
    accuracy = float(output.split("held-out accuracy: ", 1)[1].split()[0])
    assert accuracy >= 0.85
    # The dataset cache was written by the executor and read by the driver pod on the shared work volume.
    assert os.listdir(tmp_path / "shared" / "cache" / "datasets")
    wait_until(f"the job {job}'s pods to be deleted", lambda: no_pods_of(admin, namespace.name, job), timeout=120)


def test_a_failing_batch_script_returns_its_exit_status_and_its_output(
    on_real_node, admin, namespace, notebook, tmp_path
):
    job = f"fails-{uuid.uuid4().hex[:6]}"
    (tmp_path / "fails.py").write_text("import sys\nprint('about to fail', flush=True)\nsys.exit(3)\n")
    done = submit(on_real_node, namespace, notebook, tmp_path, "--name", job, "fails.py")
    output = done.stdout + done.stderr
    assert done.returncode == 3, output
    assert "about to fail" in output
    wait_until(f"the job {job}'s pods to be deleted", lambda: no_pods_of(admin, namespace.name, job), timeout=120)
