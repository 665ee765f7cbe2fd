"""A real embedded cluster with a short idle limit releases its executors, and says so on the next call.

Its own driver process (Spark allows one driver per process, and the session's shared cluster has no limit):
OCCAM_EXECUTOR_IDLE_MINUTES=0.25 (15 s, room for a loaded machine), a job, then nothing until the watcher stops the cluster.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import json, time
    from occam import ClusterStoppedError, start_cluster

    cluster = start_cluster(n=1, backend="embedded", progress=False, timeout=120)
    assert cluster.spark.range(100).count() == 100
    deadline = time.monotonic() + 90
    while not cluster.stopped and time.monotonic() < deadline:
        time.sleep(0.5)
    report = {"stopped": cluster.stopped, "status": cluster.status()}
    try:
        cluster.spark.range(1).count()
    except ClusterStoppedError as exc:
        report["error"] = str(exc)
    print(json.dumps(report, default=str))
    """
)


def test_an_idle_cluster_releases_its_executors_and_the_next_call_says_why() -> None:
    env = {**os.environ, "OCCAM_EXECUTOR_IDLE_MINUTES": "0.25", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["stopped"] is True
    assert report["status"]["executors"] == 0
    assert "released after 0.25 minutes with no Spark job and no fit" in report["status"]["stopped because"]
    assert "OCCAM_EXECUTOR_IDLE_MINUTES" in report["error"] and "start_cluster()" in report["error"]
