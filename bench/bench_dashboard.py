"""The cost of fit's live dashboard: the same fit with and without it, on one embedded cluster.

    .venv/bin/python bench/bench_dashboard.py [--out bench/results/dashboard.json] [--quick]

"With" is ``progress=True``: every rank sends its throughput and resources every 2 s (psutil), rank 0 its
running metrics every second, and the driver folds them into snapshots and renders the notebook's HTML
(curves as SVG, tables) at most every 2 s and at each epoch's end; the HTML goes nowhere (no front end runs
here), which leaves out only the kernel's send. "Without" is ``progress=False``: none of that runs. Runs
alternate, so drift on the machine hits both alike. Target (issue 15): the dashboard costs < 2% of fit's
throughput.
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
REPEAT_DATA = 8  # digits x 8 = 11,496 training images, as bench_embedded


class HtmlWork:
    """The notebook renderers' work (the whole dashboard's HTML) without a front end to send it to."""

    def __init__(self) -> None:
        self.updates = 0
        self.seconds = 0.0

    def _render(self, snapshot: Any) -> None:
        from occam.training.dashboard_html import dashboard_html

        started = time.perf_counter()
        dashboard_html(snapshot)
        self.seconds += time.perf_counter() - started
        self.updates += 1

    update = close = _render


def steady_samples_per_s(result: Any, rows: int, n: int) -> float:
    from occam.training.messages import EpochEnded

    epochs = [e for e in result.events if isinstance(e, EpochEnded)][1:]  # the first traces the graph
    return (rows // (BATCH * n)) * BATCH * n / statistics.mean(e.seconds for e in epochs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "dashboard.json"))
    parser.add_argument("--quick", action="store_true", help="1 pair of runs of 3 epochs (a smoke run)")
    parser.add_argument("--pairs", type=int, default=4)
    args = parser.parse_args()
    pairs, epochs = (1, 3) if args.quick else (args.pairs, EPOCHS)

    import occam.training.progress as progress_module
    from occam import Dataset, start_cluster
    from occam.examples.digits import build_cnn, load_digits

    x, y, _, _ = load_digits()
    x, y = np.concatenate([x] * REPEAT_DATA), np.concatenate([y] * REPEAT_DATA)
    cache = tempfile.mkdtemp(prefix="occam-bench-cache-")
    work = HtmlWork()
    chosen = progress_module.choose_dashboard
    progress_module.choose_dashboard = lambda progress, kind=None: work if progress else chosen(False)  # type: ignore[assignment]
    runs: dict[str, list[float]] = {"without": [], "with": []}
    try:
        with start_cluster(n=2, progress=False) as cluster:
            data = Dataset.from_numpy(x, y, spark=cluster.spark, cache_dir=cache)
            for pair in range(pairs):
                # ABBA order: a run after another may be faster or slower (warm workers, the previous run's
                # teardown); alternating which comes first keeps that out of the ratio.
                order = (("without", False), ("with", True))
                for label, progress in order if pair % 2 == 0 else order[::-1]:
                    ckpt = tempfile.mkdtemp(prefix="occam-bench-ckpt-")
                    try:
                        result = cluster.fit(
                            build_cnn, data, epochs=epochs, batch_size=BATCH, checkpoint_dir=ckpt, progress=progress
                        )
                    finally:
                        shutil.rmtree(ckpt, ignore_errors=True)
                    runs[label].append(steady_samples_per_s(result, len(data), cluster.n))
                    print(f"{label:8s} {runs[label][-1]:,.0f} samples/s", flush=True)
    finally:
        progress_module.choose_dashboard = chosen
        shutil.rmtree(cache, ignore_errors=True)

    without, with_ = statistics.median(runs["without"]), statistics.median(runs["with"])
    cost = 1 - with_ / without
    render_ms = 1000 * work.seconds / max(work.updates, 1)
    results = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "platform": platform.platform()},
        "rows": len(x),
        "batch_size": BATCH,
        "epochs": epochs,
        "ranks": 2,
        "without_samples_per_s": without,
        "with_samples_per_s": with_,
        "cost": cost,
        "target_cost": 0.02,
        "html_updates": work.updates,
        "html_render_ms": render_ms,
        "runs": runs,
    }
    print()
    print(
        format_table(
            [
                ["measure", "with dashboard", "without", "cost", "target"],
                [
                    "fit n=2, steady epochs (samples/s, median)",
                    f"{with_:,.0f}",
                    f"{without:,.0f}",
                    f"{100 * cost:+.1f}%",
                    "< 2%",
                ],
                ["driver: one HTML render (ms)", f"{render_ms:.2f}", "-", f"{work.updates} renders", "-"],
            ]
        )
    )
    spread = {k: f"{min(v):,.0f}-{max(v):,.0f}" for k, v in runs.items()}
    print(f"\nspread over {pairs} runs each: with {spread['with']}, without {spread['without']} samples/s")
    write_results(args.out, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
