"""``occam course check`` against the hub tier: a real JupyterHub with OccamSpawner and the real proxy, the
student namespace really prepared on the test cluster, and a real Jupyter server (with real kernels) standing
in for the notebook container that kwok's nodes do not run (:mod:`tests.hub.standin`).

The check's code here prints what the notebook sees instead of training: a training run needs executors on
a real node (the release's node test); the kernel round trip through the proxy, the hub's auth and the
clean-up are what this tier proves.
"""

from __future__ import annotations

from typing import Any

from occam.course.check import OK_MARKER, HubClient, run_check
from spawner.namespace import namespace_name

from ..kubernetes.fixtures import Kube
from .hubprocess import HubProcess

CODE = f"""
import os
print("namespace:", os.environ["OCCAM_K8S_NAMESPACE"])
print("idle limit:", os.environ.get("OCCAM_EXECUTOR_IDLE_MINUTES", "none"))
print({OK_MARKER!r})
"""


def _run(hub: HubProcess, user: str, code: str) -> list[Any]:
    lines: list[str] = []
    steps = run_check(
        HubClient(hub.url, hub.token), code=code, user=user, spawn_timeout=180, code_timeout=120, log=lines.append
    )
    assert lines[0] == "... create a test user"
    return steps


def test_the_check_spawns_runs_code_in_a_kernel_and_cleans_up(kube: Kube, hub: HubProcess) -> None:
    with hub.new_student(kube.admin) as user:
        steps = _run(hub, user, CODE)
        assert [(s.name, s.ok) for s in steps] == [
            ("create a test user", True),
            ("start its server", True),
            ("run the check's code in a kernel", True),
            ("stop the server and remove the user", True),
        ], steps
        assert f"namespace: {namespace_name(user)}" in steps[2].detail
        assert not hub.has_user(user)


def test_a_failing_check_says_why_and_still_cleans_up(kube: Kube, hub: HubProcess) -> None:
    with hub.new_student(kube.admin) as user:
        steps = _run(hub, user, "raise RuntimeError('the executors never came')")
        assert [(s.name, s.ok) for s in steps] == [
            ("create a test user", True),
            ("start its server", True),
            ("run the check's code in a kernel", False),
            ("stop the server and remove the user", True),
        ], steps
        assert "the executors never came" in steps[2].detail
        assert not hub.has_user(user)
