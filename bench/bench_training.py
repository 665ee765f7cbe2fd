"""Training, evaluation and prediction on CIFAR-shaped images, each against single-process Keras in the same run.

    .venv/bin/python bench/bench_training.py [--out bench/results/training.json] [--rows 6000] [--quick]

Prints a table and writes JSON. Targets (issue 12): ``fit(n=1)`` samples/s at least 0.9x plain ``tf.keras``
``model.fit`` of the same model on the same in-memory arrays, and n=2 reported beside it; ``cluster.evaluate``
and ``cluster.predict`` on n=2 against ``model.evaluate``/``model.predict`` in this process. Data: random
32x32x3 uint8 images (CIFAR-10's shape and dtype) with labels 0-9, a small CNN with a Rescaling layer. The
baseline runs TensorFlow on one thread, as each rank does (``cores=1``), before and after the cluster runs; their
mean is the baseline (on a shared machine the load drifts). ``--quick``: 1,000 rows, a smoke run.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from report import format_table, write_results

BATCH = 64
EPOCHS = 2  # the first traces the graph; the second is timed


def cifar_shaped(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (rows, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, rows)


def build_cnn() -> Any:
    """A small CIFAR-style CNN (about 0.3M parameters) taking uint8 pixels through a Rescaling layer."""
    import tensorflow as tf

    model = tf.keras.Sequential(
        [
            tf.keras.Input(shape=(32, 32, 3)),
            tf.keras.layers.Rescaling(1 / 255),
            tf.keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
            tf.keras.layers.MaxPooling2D(),
            tf.keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
            tf.keras.layers.MaxPooling2D(),
            tf.keras.layers.Flatten(),
            tf.keras.layers.Dense(64, activation="relu"),
            tf.keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def plain_keras(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Single-process Keras on the in-memory arrays: fit (the timed epoch), evaluate and predict."""
    import tensorflow as tf

    times: list[float] = []

    class Timer(tf.keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            times.append(time.perf_counter() - self.started)

    model = build_cnn()
    model.fit(x, y, batch_size=BATCH, epochs=EPOCHS, shuffle=True, verbose=0, callbacks=[Timer()])
    started = time.perf_counter()
    model.evaluate(x, y, batch_size=BATCH, verbose=0)
    evaluate_s = time.perf_counter() - started
    started = time.perf_counter()
    model.predict(x, batch_size=BATCH, verbose=0)
    predict_s = time.perf_counter() - started
    return {
        "fit_samples_per_s": (len(x) // BATCH) * BATCH / times[-1],
        "evaluate_rows_per_s": len(x) / evaluate_s,
        "predict_rows_per_s": len(x) / predict_s,
    }


def occam_run(n: int, x: np.ndarray, y: np.ndarray, cache: str, apply: bool) -> dict[str, float]:
    """fit on an n-executor cluster (the timed epoch, from the ranks' own epoch times); with ``apply``,
    ``cluster.evaluate`` and ``cluster.predict`` of the trained model, each run twice (cold, then warm
    Python workers that already imported TensorFlow)."""
    from occam import Dataset, start_cluster
    from occam.training.messages import EpochEnded

    out: dict[str, float] = {}
    with start_cluster(n=n, progress=False) as cluster:
        data = Dataset.from_numpy(x, y, spark=cluster.spark, cache_dir=cache)
        checkpoints = tempfile.mkdtemp(prefix="occam-bench-ckpt-")
        try:
            result = cluster.fit(
                build_cnn,
                data,
                epochs=EPOCHS,
                batch_size=BATCH,
                checkpoint_dir=checkpoints,
                progress=False,
                scale_lr=False,
            )
        finally:
            shutil.rmtree(checkpoints, ignore_errors=True)
        last = [e for e in result.events if isinstance(e, EpochEnded)][-1]
        out["fit_samples_per_s"] = (len(data) // (BATCH * n)) * BATCH * n / last.seconds
        if apply:
            for run in ("cold", "warm"):
                started = time.perf_counter()
                cluster.evaluate(result, data, batch_size=BATCH)
                out[f"evaluate_rows_per_s_{run}"] = len(data) / (time.perf_counter() - started)
                started = time.perf_counter()
                cluster.predict(result, data, batch_size=BATCH)
                out[f"predict_rows_per_s_{run}"] = len(data) / (time.perf_counter() - started)
    return out


def mean_baseline(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: sum(run[key] for run in runs) / len(runs) for key in runs[0]}


def table(results: dict[str, Any]) -> str:
    plain, one, two = results["plain_keras"], results["occam_n1"], results["occam_n2"]

    def row(measure: str, ours: float, base: float, target: str) -> tuple[str, ...]:
        return (measure, f"{ours:,.0f}", f"{base:,.0f}", f"{ours / base:.2f}", target)

    rows = [
        row("fit n=1 (samples/s)", one["fit_samples_per_s"], plain["fit_samples_per_s"], ">= 0.9"),
        row("fit n=2 (samples/s)", two["fit_samples_per_s"], plain["fit_samples_per_s"], "-"),
        row("evaluate n=2, warm (rows/s)", two["evaluate_rows_per_s_warm"], plain["evaluate_rows_per_s"], "-"),
        row("evaluate n=2, cold (rows/s)", two["evaluate_rows_per_s_cold"], plain["evaluate_rows_per_s"], "-"),
        row("predict n=2, warm (rows/s)", two["predict_rows_per_s_warm"], plain["predict_rows_per_s"], "-"),
        row("predict n=2, cold (rows/s)", two["predict_rows_per_s_cold"], plain["predict_rows_per_s"], "-"),
    ]
    return format_table([("measure", "occam", "single-process Keras", "ratio", "target"), *rows])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(Path(__file__).with_name("results") / "training.json"))
    parser.add_argument("--rows", type=int, default=6000)
    parser.add_argument("--quick", action="store_true", help="1,000 rows: a smoke run")
    args = parser.parse_args()
    rows = 1000 if args.quick else args.rows

    import tensorflow as tf

    # One thread, as each rank runs with cores=1: the baseline is what one executor's core does alone.
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    x, y = cifar_shaped(rows)
    cache = tempfile.mkdtemp(prefix="occam-bench-cache-")
    try:
        results = {
            "machine": {"cores": os.cpu_count(), "python": sys.version.split()[0], "platform": platform.platform()},
            "rows": rows,
            "batch_size": BATCH,
            "epochs": EPOCHS,
            # The baseline before and after the cluster runs (their mean is the baseline): the machine is shared,
            # and its load drifts over the minutes a run takes.
            "plain_keras_runs": [plain_keras(x, y)],
            "occam_n1": occam_run(1, x, y, cache, apply=False),
            "occam_n2": occam_run(2, x, y, cache, apply=True),
        }
        results["plain_keras_runs"].append(plain_keras(x, y))
        results["plain_keras"] = mean_baseline(results["plain_keras_runs"])
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    print(table(results))
    write_results(args.out, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
