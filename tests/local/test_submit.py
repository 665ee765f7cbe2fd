"""``occam submit`` on the embedded cluster: real spark-submit, real executor JVMs, real Horovod training.

Each job is its own spark-submit process with its own ``local-cluster`` (n=2, one core and little memory
each, to fit beside the session's cluster on a small machine). The caller sees the job's output and exit
status; nothing of the job is left afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
import uuid
from pathlib import Path

import psutil

JOB_TIMEOUT = 900  # seconds: JVMs, TensorFlow and two epochs on a shared 2-core machine


def occam_submit(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYSPARK_GATEWAY_PORT"}
    return subprocess.run(
        [sys.executable, "-m", "occam.cli", "submit", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=JOB_TIMEOUT,
    )


def leftovers(name: str) -> list[str]:
    """Processes and work directories of job ``name`` still there (its name is in their command lines)."""
    left = [d for d in os.listdir(tempfile.gettempdir()) if d.startswith(f"{name}-")]
    for proc in psutil.process_iter(["pid", "cmdline"]):
        if any(name in part for part in proc.info["cmdline"] or []):
            left.append(f"process {proc.info['pid']}")
    return left


def test_a_submitted_job_trains_digits_and_its_log_and_status_reach_the_caller(tmp_path):
    name = f"batch-{uuid.uuid4().hex[:6]}"
    done = occam_submit(
        *("-m", "occam.examples.train_digits", "--name", name, "-n", "2", "--cores", "1", "--memory", "768m"),
        *("--", "--epochs", "2", "--min-accuracy", "0.5"),
        cwd=tmp_path,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert f"cluster {name}: 2 executors" in done.stdout  # start_cluster() took the submission's size
    assert "epoch 1: loss=" in done.stdout and "epoch 2: loss=" in done.stdout
    assert "held-out accuracy: " in done.stdout and "on 2 ranks" in done.stdout
    assert "inside a submitted job" not in output  # start_cluster() without n takes the job's size silently
    assert "ERROR" not in done.stderr, done.stderr  # the job's context stops before the JVM: a clean shutdown
    assert leftovers(name) == []


def test_a_failing_job_returns_its_status_and_traceback(tmp_path):
    name = f"batch-{uuid.uuid4().hex[:6]}"
    (tmp_path / "fails.py").write_text(
        textwrap.dedent(
            """\
            import sys
            from occam import start_cluster

            with start_cluster(n=1, progress=False) as cluster:
                print("executors", cluster.n, cluster.executor_count(), flush=True)
            # cluster.stop() leaves the job's own Spark session usable until the script ends.
            from pyspark.sql import SparkSession
            print("rows after stop", SparkSession.builder.getOrCreate().range(7).count(), flush=True)
            raise RuntimeError("bad batch " + " ".join(sys.argv[1:]))
            """
        )
    )
    done = occam_submit("fails.py", "--name", name, "-n", "2", "--memory", "512m", "--", "--lr", "0.1", cwd=tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "executors 2 2" in output  # the submission's size wins over the script's n=1 ...
    assert "start_cluster(n=1) inside a submitted job: the job was submitted with 2 executor(s)" in output  # ... said
    assert "rows after stop 7" in output
    assert "Traceback (most recent call last)" in output
    assert "RuntimeError: bad batch --lr 0.1" in output
    assert leftovers(name) == []


def test_a_missing_script_is_refused_before_anything_starts(tmp_path):
    done = occam_submit("nope.py", "--backend", "embedded", cwd=tmp_path)
    assert done.returncode == 2
    assert "occam: no script 'nope.py'" in done.stderr and "check the path" in done.stderr
