"""What recording a fit costs: fit throughput and wall time with tracking off, with MLflow, with MLflow and
TensorBoard, on one embedded cluster, interleaved in the same run.

    .venv/bin/python bench/bench_tracking.py [--out bench/results/tracking.json] [--repeats 2]

Prints a table and writes JSON. Throughput is the ranks' own (steady-state epochs, from their epoch events),
so it shows what tracking costs training; wall time adds what the driver does around it (importing MLflow the
first time, saving the model as an artifact). Target (issue 15): tracking costs less than 2% of throughput.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from report import format_table, write_results

BATCH = 64
EPOCHS = 4
REPEAT_DATA = 4  # digits x 4 = 5,748 images: epochs of a few seconds

#: name -> fit arguments; the first is the baseline.
CONFIGS: dict[str, dict[str, Any]] = {
    "off": {"track": False},
    "mlflow": {"track": True},
    "mlflow+tensorboard": {"track": True, "tensorboard": True},
}


def one_fit(cluster: Any, data: Any, options: dict[str, Any]) -> dict[str, float]:
    from occam.examples.digits import build_cnn
    from occam.training.messages import EpochEnded

    ckpt = tempfile.mkdtemp(prefix="occam-bench-ckpt-")
    try:
        started = time.perf_counter()
        result = cluster.fit(
            build_cnn, data, epochs=EPOCHS, batch_size=BATCH, checkpoint_dir=ckpt, progress=False, **options
        )
        wall = time.perf_counter() - started
    finally:
        shutil.rmtree(ckpt, ignore_errors=True)
    epochs = [e for e in result.events if isinstance(e, EpochEnded)][1:]  # the first traces the graph
    samples = (len(data) // (BATCH * cluster.n)) * BATCH * cluster.n
    return {"samples_per_s": samples / statistics.mean(e.seconds for e in epochs), "wall_s": wall}


def bench(repeats: int) -> dict[str, Any]:
    from occam import Dataset, start_cluster
    from occam.examples.digits import load_digits

    x, y, _, _ = load_digits()
    x, y = np.concatenate([x] * REPEAT_DATA), np.concatenate([y] * REPEAT_DATA)
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in CONFIGS}
    with start_cluster(n=2, progress=False) as cluster:
        data = Dataset.from_numpy(x, y, spark=cluster.spark)
        one_fit(cluster, data, {"track": False})  # warm-up: Horovod's first start, TensorFlow's first trace
        first_tracked = one_fit(cluster, data, {"track": True})  # MLflow imported and its store created here
        for _ in range(repeats):  # interleaved, so drift on the shared machine hits each alike
            for name, options in CONFIGS.items():
                runs[name].append(one_fit(cluster, data, options))
    base = runs["off"]
    results: dict[str, Any] = {
        "rows": len(x),
        "batch_size": BATCH,
        "epochs": EPOCHS,
        "executors": 2,
        "first_tracked_fit_wall_s": first_tracked["wall_s"],
        "configs": {},
    }
    for name, measured in runs.items():
        rate = statistics.median(m["samples_per_s"] for m in measured)
        wall = statistics.median(m["wall_s"] for m in measured)
        results["configs"][name] = {
            "samples_per_s": rate,
            "wall_s": wall,
            "throughput_vs_off": rate / statistics.median(m["samples_per_s"] for m in base),
            "wall_vs_off": wall / statistics.median(m["wall_s"] for m in base),
            "runs": measured,
        }
    return results


def table(results: dict[str, Any]) -> str:
    rows = []
    off = results["configs"]["off"]
    for name, c in results["configs"].items():
        rows.append(
            (
                f"fit n=2, {name}",
                f"{c['samples_per_s']:.0f}",
                f"{off['samples_per_s']:.0f}",
                f"{c['throughput_vs_off']:.3f}",
                f"{c['wall_s']:.1f}",
                f"{c['wall_vs_off']:.2f}",
                ">= 0.98" if name != "off" else "-",
            )
        )
    rows.append(
        ("first tracked fit (imports MLflow)", "-", "-", "-", f"{results['first_tracked_fit_wall_s']:.1f}", "-", "-")
    )
    header = ("measure", "samples/s", "off samples/s", "ratio", "wall s", "wall ratio", "target")
    return format_table([header, *rows])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(Path(__file__).with_name("results") / "tracking.json"))
    parser.add_argument("--repeats", type=int, default=2, help="fits of each kind (median)")
    args = parser.parse_args()

    home = tempfile.mkdtemp(prefix="occam-bench-tracking-")
    os.environ["OCCAM_CACHE_DIR"] = home  # the dataset cache, the runs and the SQLite store, removed after
    try:
        results = {
            "machine": {"cores": os.cpu_count(), "python": sys.version.split()[0], "platform": platform.platform()},
            **bench(args.repeats),
        }
    finally:
        shutil.rmtree(home, ignore_errors=True)
    print(table(results))
    write_results(args.out, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
