"""What every rank measures about itself while it trains, for the notebook's dashboard: throughput, CPU,
memory, and the GPU's use where the rank has one.

Measuring must not slow training: the callback only counts batches and, every ``STATS_SECONDS``, reads its
process's counters (psutil: microseconds) and sends one small message. ``nvidia-smi`` takes tens of
milliseconds, so it runs in its own thread and the callback sends its last answer.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import threading
import time
from typing import Any

from occam.training.events import EventClient
from occam.training.messages import RankStats

#: How often each rank reports its throughput and resources.
STATS_SECONDS = 2.0
#: How often a rank with a GPU asks nvidia-smi, and how long it waits for an answer.
GPU_POLL_SECONDS = 5.0
GPU_QUERY_TIMEOUT = 10.0


def parse_nvidia_smi(text: str) -> dict[str, float]:
    """``nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader,nounits``'s first line as
    ``gpu_percent`` and ``gpu_memory_mb``; empty when it says something else (``[N/A]`` on some GPUs)."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    parts = [p.strip() for p in first.split(",")]
    try:
        return {"gpu_percent": float(parts[0]), "gpu_memory_mb": float(parts[1])}
    except (IndexError, ValueError):
        return {}


class GpuProbe(threading.Thread):
    """Asks nvidia-smi about the rank's (first visible) GPU every ``GPU_POLL_SECONDS``; ``latest`` is its last
    answer. Stops with the rank (a daemon thread) or at :meth:`stop`."""

    def __init__(self, executable: str, device: str) -> None:
        super().__init__(name="occam-gpu-probe", daemon=True)
        self.command = [
            executable,
            "--query-gpu=utilization.gpu,memory.used",
            "--format=csv,noheader,nounits",
            f"--id={device}",
        ]
        self.latest: dict[str, float] = {}
        self._stopped = threading.Event()

    def run(self) -> None:
        while not self._stopped.is_set():
            try:
                out = subprocess.run(self.command, capture_output=True, text=True, timeout=GPU_QUERY_TIMEOUT)
            except (OSError, subprocess.TimeoutExpired):
                return  # no answer now means none later: the dashboard shows no GPU
            self.latest = parse_nvidia_smi(out.stdout) if out.returncode == 0 else {}
            self._stopped.wait(GPU_POLL_SECONDS)

    def stop(self) -> None:
        self._stopped.set()


def gpu_probe(tf: Any) -> GpuProbe | None:
    """A started probe of the GPU this rank trains on; ``None`` when TensorFlow sees no GPU or there is no
    nvidia-smi."""
    executable = shutil.which("nvidia-smi")
    if executable is None or not tf.config.list_physical_devices("GPU"):
        return None
    device = (os.environ.get("CUDA_VISIBLE_DEVICES") or "0").split(",")[0].strip() or "0"
    probe = GpuProbe(executable, device)
    probe.start()
    return probe


class ProcessProbe:
    """CPU (percent of one core, since the last read) and resident memory of this process."""

    def __init__(self) -> None:
        import psutil

        self.process = psutil.Process()
        self.process.cpu_percent(None)  # the first call starts the interval

    def read(self) -> dict[str, float]:
        with self.process.oneshot():
            return {
                "cpu_percent": float(self.process.cpu_percent(None)),
                "memory_mb": self.process.memory_info().rss / 2**20,
            }


def monitor_callback(
    tf: Any, events: EventClient, rank: int, batch_size: int, *, interval: float = STATS_SECONDS
) -> Any:
    """A Keras callback that sends :class:`~occam.training.messages.RankStats` every ``interval`` seconds."""

    class Monitor(tf.keras.callbacks.Callback):
        def on_train_begin(self, logs: Any = None) -> None:
            self.process = ProcessProbe()
            self.gpu = gpu_probe(tf)
            self.epoch = 1
            self.samples = 0
            self.since = time.perf_counter()

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.epoch = epoch + 1
            # Validation and checkpoints between epochs are not training throughput.
            self.samples, self.since = 0, time.perf_counter()

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            self.samples += batch_size
            now = time.perf_counter()
            if now - self.since >= interval:
                self._send(now)

        def _send(self, now: float) -> None:
            resources = self.process.read()
            if self.gpu is not None:
                resources.update(self.gpu.latest)
            rate = self.samples / (now - self.since)
            events.send(RankStats(rank=rank, epoch=self.epoch, samples_per_second=rate, resources=resources))
            self.samples, self.since = 0, now

        def on_train_end(self, logs: Any = None) -> None:
            if self.gpu is not None:
                with contextlib.suppress(Exception):
                    self.gpu.stop()

    return Monitor()
