"""``occam status`` and ``occam stop`` in a notebook pod's terminal, against the real API server."""

from __future__ import annotations

import os
import subprocess
import sys

from occam.kubernetes import objects

from .student import restricted_pod_spec, wait_until
from .test_backend import EXECUTOR_IMAGE


def occam_cli(namespace, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "KUBECONFIG": str(namespace.kubeconfig),
        "OCCAM_K8S_NAMESPACE": namespace.name,
        "OCCAM_K8S_POD_NAME": "jupyter-ada",
    }
    return subprocess.run(
        [sys.executable, "-m", "occam.cli", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_status_lists_and_stop_deletes_a_cluster(namespace, admin):
    for cluster, count in (("occam-one", 2), ("occam-two", 1)):
        for index in range(count):
            pod = {
                "metadata": {
                    "name": f"{cluster}-exec-{index}",
                    "labels": {objects.APP_LABEL: "occam", objects.CLUSTER_LABEL: cluster, objects.USER_LABEL: "ada"},
                },
                "spec": restricted_pod_spec({"name": "executor", "image": EXECUTOR_IMAGE}),
            }
            admin.create_namespaced_pod(namespace.name, pod)
    status = occam_cli(namespace, "status")
    assert status.returncode == 0, status.stderr
    lines = {line.split()[0]: line for line in status.stdout.splitlines()[1:]}
    assert set(lines) == {"occam-one", "occam-two"}
    assert lines["occam-one"].split()[1:3] == ["ada", "2"]

    stopped = occam_cli(namespace, "stop", "occam-one")
    assert stopped.returncode == 0, stopped.stderr
    assert "stopped occam-one: deleted its 2 executor pod(s)" in stopped.stdout
    wait_until("occam-one's pods to go", lambda: "occam-one" not in occam_cli(namespace, "status").stdout)
    assert "occam-two" in occam_cli(namespace, "status").stdout

    missing = occam_cli(namespace, "stop", "occam-nope")
    assert missing.returncode == 2 and "no cluster occam-nope" in missing.stderr
