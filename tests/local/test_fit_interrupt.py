"""Ctrl-C during fit (SIGINT to the driver, as the notebook's stop button sends): a KeyboardInterrupt soon,
saying where training stopped; no rank keeps running; the cluster and later Ctrl-Cs still work.

The driver runs in its own process (a SIGINT to the test process would stop pytest).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

DRIVER = textwrap.dedent(
    """
    import os, signal, sys, time
    import psutil
    from occam import Dataset, start_cluster
    from occam.examples.digits import build_cnn, load_digits

    x, y, _, _ = load_digits()
    with start_cluster(n=2, progress=False) as cluster:
        data = Dataset.from_numpy(x, y, spark=cluster.spark, cache_dir=sys.argv[1])
        def stop_after_first_epoch(epoch, logs):
            if epoch == 1:
                os.kill(os.getpid(), signal.SIGINT)
        before = signal.getsignal(signal.SIGINT)  # pyspark's: cancel the jobs, raise KeyboardInterrupt
        try:
            cluster.fit(build_cnn, data, epochs=40, batch_size=32, checkpoint_dir=sys.argv[2], progress=False,
                        on_epoch_end=stop_after_first_epoch)
            print("RESULT not interrupted", flush=True)
        except KeyboardInterrupt as interrupt:
            print("RESULT interrupted:", interrupt, flush=True)
        deadline = time.monotonic() + 60
        def ranks():
            found = []
            for p in psutil.Process().children(recursive=True):
                try:  # a process may end (or be a zombie) between the listing and the look
                    if p.status() != psutil.STATUS_ZOMBIE and "horovod" in " ".join(p.cmdline()):
                        found.append(p)
                except psutil.Error:
                    continue
            return found
        while ranks() and time.monotonic() < deadline:
            time.sleep(0.5)
        print("RANKS LEFT", len(ranks()), flush=True)
        print("SUM", cluster.sc.parallelize(range(100), 4).sum(), flush=True)
        # The notebook's own Ctrl-C works again: the handler from before fit is back (Horovod replaces it).
        print("HANDLER", signal.getsignal(signal.SIGINT) is before, flush=True)
    """
)


def test_ctrl_c_during_fit_stops_training_names_the_checkpoint_and_leaves_the_cluster_usable(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", DRIVER, str(tmp_path / "cache"), str(tmp_path / "checkpoints")],
        capture_output=True,
        text=True,
        timeout=480,
    )
    lines = {line.split(" ", 1)[0]: line for line in result.stdout.splitlines() if line.isupper() or " " in line}
    out = result.stdout + result.stderr[-3000:]
    assert result.returncode == 0, out
    assert "RESULT interrupted: fit interrupted during epoch" in result.stdout, out
    stopped_at = int(lines["RESULT"].split("during epoch ")[1].split(" ")[0])
    assert stopped_at < 10, "training went on long after the Ctrl-C"
    assert "of 40; fit(..., resume=True) goes on from the checkpoint" in result.stdout, out
    assert "fit interrupted during epoch" in result.stderr, "the line is printed for the notebook too"
    assert "RANKS LEFT 0" in result.stdout, out
    assert "SUM 4950" in result.stdout, out
    assert "HANDLER True" in result.stdout, out
