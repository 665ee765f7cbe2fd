"""A real Jupyter server standing in for the notebook container that kwok's fake nodes do not run.

kwok reports the notebook pod Running with an IP, but nothing listens there, so the hub's readiness
check would fail. The test hub's config points KubeSpawner's ``get_pod_url`` hook (a supported setting,
``c.KubeSpawner.get_pod_url``) at :func:`pod_url`: when the pod is Running, it starts a real
``jupyterhub-singleuser`` on loopback with the environment the hub put in the pod's spec (its API
token, OAuth client, service prefix and the ``OCCAM_K8S_*`` variables, downward-API fields resolved
from the pod), and returns that server's URL. ``c.Spawner.post_stop_hook`` = :func:`stop` ends it.

Everything the spawner does to Kubernetes is real; only the container's process runs here, not on the
node. The processes stay in the hub's process group, which the fixture kills as a whole.

Runs inside the hub process (imported from the generated ``jupyterhub_config.py``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

#: "namespace/pod name" -> (pod uid, process, url)
_SERVERS: dict[str, tuple[str, subprocess.Popen, str]] = {}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _field(pod: dict[str, Any], path: str) -> str:
    value: Any = pod
    for part in path.split("."):
        value = (value or {}).get(part)
    return "" if value is None else str(value)


def container_env(pod: dict[str, Any]) -> dict[str, str]:
    """The first container's environment as the kubelet would set it (values, and fieldRef from ``pod``)."""
    env: dict[str, str] = {}
    for item in pod["spec"]["containers"][0].get("env") or []:
        if "value" in item:
            env[item["name"]] = str(item["value"] or "")
        elif ((item.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath"):
            env[item["name"]] = _field(pod, item["valueFrom"]["fieldRef"]["fieldPath"])
    return env


def pod_url(spawner: Any, pod: dict[str, Any]) -> str:
    """KubeSpawner's ``get_pod_url`` hook: the URL of the stand-in server of ``pod`` (started once per pod)."""
    uid = pod["metadata"]["uid"]
    key = f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
    if key in _SERVERS:
        old_uid, old, old_url = _SERVERS[key]
        if old_uid == uid and old.poll() is None:
            return old_url
        _end(key)
    port = _free_port()
    env = container_env(pod)
    workdir = Path(os.environ["OCCAM_HUB_TEST_DIR"]) / f"standin-{pod['metadata']['name']}-{uid[:8]}"
    workdir.mkdir(parents=True, exist_ok=True)
    prefix = env.get("JUPYTERHUB_SERVICE_PREFIX", "/")
    env.update(
        {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(workdir),
            "JUPYTER_RUNTIME_DIR": str(workdir / "runtime"),
            "JUPYTER_DATA_DIR": str(workdir / "data"),
            "JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:{port}{prefix}",
            "OCCAM_STANDIN": "1",
        }
    )
    log = open(workdir / "singleuser.log", "ab")  # noqa: SIM115 - the process owns it
    singleuser = str(Path(sys.executable).with_name("jupyterhub-singleuser"))
    args = [singleuser, f"--ServerApp.root_dir={workdir}", "--ServerApp.open_browser=False"]
    if os.geteuid() == 0:  # the test machine runs as root; notebook images do not
        args.append("--allow-root")
    proc = subprocess.Popen(
        args,
        env=env,
        cwd=workdir,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    url = f"http://127.0.0.1:{port}"
    _SERVERS[key] = (uid, proc, url)
    spawner.log.info("Stand-in Jupyter server for pod %s: pid %s at %s", pod["metadata"]["name"], proc.pid, url)
    return url


def _end(key: str) -> None:
    _uid, proc, _url = _SERVERS.pop(key)
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=20)


def stop(spawner: Any) -> None:
    """``post_stop_hook``: end the stand-in server of this spawner's pod, if it has one."""
    key = f"{spawner.namespace}/{spawner.pod_name}"
    if key in _SERVERS:
        _end(key)
