"""Copies pods' logs to files while they run, for a failing test's message: Spark and the hub delete their
pods when something fails, and the reason is often only in the pod's own output."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Any


class PodLogs(threading.Thread):
    """``logs = PodLogs(core, namespace, selector, folder); logs.start()``: each running pod matching ``selector``
    has its log followed (through the API server and the kubelet) into ``<folder>/<pod>.log``."""

    def __init__(self, core: Any, namespace: str, selector: str, folder: Path) -> None:
        super().__init__(daemon=True)
        self.core, self.namespace, self.selector, self.folder = core, namespace, selector, folder
        self.done = threading.Event()
        self._seen: set[str] = set()
        folder.mkdir(parents=True, exist_ok=True)

    def run(self) -> None:
        while not self.done.wait(1):
            with contextlib.suppress(Exception):
                for pod in self.core.list_namespaced_pod(self.namespace, label_selector=self.selector).items:
                    if pod.metadata.name not in self._seen and pod.status.phase in ("Running", "Succeeded", "Failed"):
                        self._seen.add(pod.metadata.name)
                        threading.Thread(target=self._follow, args=(pod.metadata.name,), daemon=True).start()

    def _follow(self, pod: str) -> None:
        with contextlib.suppress(Exception), open(self.folder / f"{pod}.log", "wb") as out:
            stream = self.core.read_namespaced_pod_log(pod, self.namespace, follow=True, _preload_content=False)
            for chunk in stream.stream(4096):
                out.write(chunk)
                out.flush()

    def tails(self, lines: int = 40) -> str:
        """The last ``lines`` of each pod's log, under its name."""
        return "".join(
            f"\n--- log of pod {log.stem} ---\n" + "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
            for log in sorted(self.folder.glob("*.log"))
        )
