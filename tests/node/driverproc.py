"""Start tests/node/node_driver.py as the notebook kernel would run, against the real node.

The driver process gets what the spawner gives a notebook pod (``OCCAM_K8S_*``, the student's token in
``KUBECONFIG``), with two differences, because it runs on this machine and not in a pod:

* its pod IP is the bridge's gateway address (:data:`~.realnode.GATEWAY`), where executor pods reach it;
* its shared work volume (``OCCAM_K8S_SHARED_VOLUME``, as the spawner sets it from
  ``shared_work_volume``) is a ``hostPath`` folder of this machine, which the driver sees directly and
  the executors mount at the same path; on a real cluster it is a ReadWriteMany claim or NFS. It holds
  Occam's dataset cache and checkpoints, as ``OCCAM_CACHE_DIR``/``OCCAM_CHECKPOINT_DIR`` say;
* it runs this venv's Python as ``/opt/occam/venv/bin/python``, the notebook image's path (:func:`image_python`):
  Spark gives executors the driver's ``sys.executable`` as their Python, and Horovod starts its ranks with it,
  so with the image's path the executor pods run the image's own environment (the same lock, so the same
  versions), unchanged.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.kubernetes.student import StudentNamespace

from .images import IMAGE_VENV
from .realnode import GATEWAY, RealNode

DRIVER = str(Path(__file__).with_name("node_driver.py"))

# In a mount namespace of its own (nothing changes on this machine): a tmpfs over /opt, this venv bound at the
# image's venv path, then that path's Python. The venv's pyvenv.cfg makes it this venv's interpreter there.
_AT_IMAGE_PATH = (
    'mount -t tmpfs -o mode=755 occam-opt /opt && mkdir -p "$1" && mount --bind "$2" "$1" && '
    'venv=$1 && shift 2 && exec "$venv/bin/python" "$@"'
)


def image_python(*args: str) -> list[str]:
    """The command running ``python ARGS`` with this venv seen at the image's venv path (:data:`IMAGE_VENV`).

    Needs root (a mount namespace), as the node tier does.
    """
    command = ["unshare", "--mount", "--propagation", "private", "sh", "-c", _AT_IMAGE_PATH, "sh"]
    return [*command, IMAGE_VENV, sys.prefix, *args]


def shared_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "shared"
    folder.mkdir(mode=0o777)
    folder.chmod(0o777)  # mkdir's mode is masked by the umask
    return folder


def spark_defaults(conf_dir: Path) -> Path:
    conf_dir.mkdir(exist_ok=True)
    (conf_dir / "spark-defaults.conf").write_text(
        # Only because this driver runs as root while the executors run as the image's user: Hadoop
        # creates the output directories on the driver, and the executors' tasks must write into them.
        # In a real deployment the notebook and the executors run the same image as the same user.
        "spark.hadoop.fs.permissions.umask-mode 000\n"
    )
    return conf_dir


def student_env(node: RealNode, namespace: StudentNamespace, notebook: dict[str, Any], shared: Path) -> dict[str, str]:
    """This process's environment plus what the spawner gives the student's notebook pod (``OCCAM_K8S_*``, the
    student's token in ``KUBECONFIG``, the dataset cache and checkpoints on the shared work volume)."""
    env = dict(os.environ)
    env.update(
        {
            "KUBECONFIG": str(namespace.kubeconfig),
            "OCCAM_K8S_NAMESPACE": namespace.name,
            "OCCAM_K8S_POD_NAME": notebook["metadata"]["name"],
            "OCCAM_K8S_POD_UID": notebook["metadata"]["uid"],
            "OCCAM_K8S_EXECUTOR_IMAGE": node.images["notebook"].ref,
            "OCCAM_K8S_USER": "ada",
            "OCCAM_K8S_API_SERVER": node.control_plane.server,
            "OCCAM_K8S_SHARED_VOLUME": json.dumps({"hostPath": {"path": str(shared), "type": "Directory"}}),
            "OCCAM_K8S_SHARED_PATH": str(shared),
            "OCCAM_CACHE_DIR": str(shared / "cache"),
            "OCCAM_CHECKPOINT_DIR": str(shared / "checkpoints"),
        }
    )
    return env


class NodeDriver:
    """The driver process; :meth:`read` returns its next JSON line (with a deadline)."""

    def __init__(
        self, node: RealNode, namespace: StudentNamespace, notebook: dict[str, Any], tmp_path: Path, **options: Any
    ) -> None:
        self.shared = shared_folder(tmp_path)
        # Only because this driver runs as root and the executors as the image's user: Occam makes its dataset
        # cache private (0700) to whoever runs the notebook, which on a real cluster is the executors' user too.
        # Made here readable by others (never writable: Occam refuses that), so the executors can read it.
        for folder in (self.shared / "cache", self.shared / "cache" / "datasets"):
            folder.mkdir(mode=0o755)
            folder.chmod(0o755)
        env = student_env(node, namespace, notebook, self.shared)
        env["OCCAM_K8S_POD_IP"] = GATEWAY
        env["SPARK_CONF_DIR"] = str(spark_defaults(tmp_path / "spark-conf"))
        self.name = options.setdefault("name", f"node-{os.getpid()}-{int(time.monotonic() * 1000) % 100000}")
        self.log = tmp_path / "driver.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                image_python(DRIVER, json.dumps(options)),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                env=env,
            )
        assert self.read(30)["started"] == self.name

    def read(self, timeout: float) -> dict[str, Any]:
        """The next JSON line the driver prints; fails after ``timeout`` seconds or if it exits."""
        import selectors

        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.proc.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                raise TimeoutError(f"the driver printed nothing for {timeout:.0f} s; its log:\n{self.log_tail()}")
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the driver exited (status {self.proc.wait(10)}); its log:\n{self.log_tail()}")
        return json.loads(line)

    def read_until(self, key: str, timeout: float) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Lines until one has ``key`` (or ``error``); that line and the ones before it."""
        deadline = time.monotonic() + timeout
        seen: list[dict[str, Any]] = []
        while True:
            message = self.read(max(1.0, deadline - time.monotonic()))
            if key in message or "error" in message:
                return message, seen
            seen.append(message)

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def close(self) -> None:
        """Stop the cluster if the driver still runs, then end the process."""
        if self.proc.poll() is None:
            try:
                self.send("stop")
                self.read_until("stopped", 120)
            except Exception:
                self.proc.kill()
        self.proc.wait(timeout=60)
