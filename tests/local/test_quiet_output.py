"""Quiet by default: ``occam demo`` in a log (stdout and stderr not terminals) prints Occam's own lines, as
plain lines, not TensorFlow's C++ notices or Spark's start-up warnings; ``--verbose`` lets those through."""

from __future__ import annotations

import os
import re
import subprocess
import sys

#: What the libraries print at start-up when nobody quiets them.
TENSORFLOW_NOTICE = re.compile(r"cpu_feature_guard|oneDNN custom operations|I tensorflow/")
SPARK_WARNING = re.compile(r"\bWARN\b|Setting default log level")


def run_demo(*extra: str) -> subprocess.CompletedProcess[str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "OCCAM_LOG_LEVEL", "OCCAM_DASHBOARD")
    }
    out = subprocess.run(
        [sys.executable, "-m", "occam.cli", "demo", "--executors", "1", *extra],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out


def test_the_demo_in_a_log_prints_plain_progress_lines_and_no_library_notices():
    out = run_demo("--epochs", "2")
    both = out.stdout + out.stderr
    assert "\r" not in both  # nothing redrawn: no progress bars in a log
    assert not TENSORFLOW_NOTICE.search(both), both[-3000:]
    assert not SPARK_WARNING.search(both), both[-3000:]
    epochs = [line for line in out.stdout.splitlines() if line.startswith("epoch ")]
    assert [line.split(" (")[0] for line in epochs] == ["epoch 1/2", "epoch 2/2"], out.stdout
    assert "samples/s" in epochs[0] and "val_accuracy=" in epochs[-1]
    assert "held-out accuracy" in out.stdout


def test_verbose_lets_the_libraries_notices_through():
    out = run_demo("--epochs", "1", "--verbose")
    assert TENSORFLOW_NOTICE.search(out.stderr), out.stderr[-3000:]
    assert SPARK_WARNING.search(out.stderr), out.stderr[-3000:]
