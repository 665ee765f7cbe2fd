"""Benchmarks of the embedded cluster, each a ratio against a baseline measured in the same run.

    .venv/bin/python bench/bench_embedded.py [--out bench/results/embedded.json] [--quick]

Prints a table and writes JSON. Targets (from the embedded-cluster issue): start-up ratio <= 1.2,
fit(n=1) >= 0.8 of plain Keras, conversion <= 1.5x of df.write.parquet.
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
REPEAT_DATA = 8  # digits x 8 = 11,496 training images: epochs long enough to time


def _shutdown_gateway() -> None:
    from pyspark import SparkContext

    gateway = SparkContext._gateway
    if gateway is not None:
        proc = gateway.proc
        gateway.shutdown()
        proc.stdin.close()
        proc.wait(timeout=60)
    SparkContext._gateway = None
    SparkContext._jvm = None


def bare_local_cluster_startup(n: int) -> float:
    """Bare pyspark: a fresh JVM with local-cluster[n,1,1024] until n executors have registered."""
    from pyspark.sql import SparkSession

    started = time.perf_counter()
    spark = (
        SparkSession.builder.master(f"local-cluster[{n},1,1024]")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    while spark.sparkContext._jsc.sc().getExecutorMemoryStatus().size() - 1 < n:
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    app_id = spark.sparkContext.applicationId
    spark.stop()
    _shutdown_gateway()
    # Bare local-cluster leaves its executor logs inside the pyspark package: remove them.
    import pyspark

    shutil.rmtree(os.path.join(os.path.dirname(pyspark.__file__), "work", app_id), ignore_errors=True)
    return elapsed


def occam_startup(n: int) -> float:
    from occam import start_cluster

    started = time.perf_counter()
    cluster = start_cluster(n=n, progress=False)
    elapsed = time.perf_counter() - started
    cluster.stop()
    return elapsed


def bench_startup(repeats: int) -> dict[str, Any]:
    bare, ours = [], []
    for _ in range(repeats):  # interleaved, so drift on the machine hits both alike
        bare.append(bare_local_cluster_startup(2))
        ours.append(occam_startup(2))
    return {
        "bare_local_cluster_s": statistics.median(bare),
        "start_cluster_s": statistics.median(ours),
        "ratio": statistics.median(ours) / statistics.median(bare),
        "runs": {"bare": bare, "occam": ours},
    }


def training_data() -> tuple[np.ndarray, np.ndarray]:
    from occam.examples.digits import load_digits

    x, y, _, _ = load_digits()
    return np.concatenate([x] * REPEAT_DATA), np.concatenate([y] * REPEAT_DATA)


def plain_keras_samples_per_s(x: np.ndarray, y: np.ndarray) -> float:
    """Single-process tf.keras fit of the same model on the same in-memory data, one thread like one rank."""
    import tensorflow as tf

    from occam.examples.digits import build_cnn

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    times: list[float] = []

    class Timer(tf.keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.t)

    build_cnn().fit(x, y, batch_size=BATCH, epochs=EPOCHS, shuffle=True, verbose=0, callbacks=[Timer()])
    steady = times[1:]  # the first epoch traces the graph
    return (len(x) // BATCH) * BATCH / statistics.mean(steady)


def occam_fit_samples_per_s(n: int, x: np.ndarray, y: np.ndarray, cache: str) -> float:
    from occam import Dataset, start_cluster
    from occam.examples.digits import build_cnn
    from occam.training.messages import EpochEnded

    with start_cluster(n=n, progress=False) as cluster:
        data = Dataset.from_numpy(x, y, spark=cluster.spark, cache_dir=cache)
        ckpt = tempfile.mkdtemp(prefix="occam-bench-ckpt-")
        try:
            result = cluster.fit(
                build_cnn, data, epochs=EPOCHS, batch_size=BATCH, checkpoint_dir=ckpt, progress=False, scale_lr=False
            )
        finally:
            shutil.rmtree(ckpt, ignore_errors=True)
    epochs = [e for e in result.events if isinstance(e, EpochEnded)][1:]
    samples = (len(data) // (BATCH * n)) * BATCH * n
    return samples / statistics.mean(e.seconds for e in epochs)


def bench_training(cache: str) -> dict[str, Any]:
    x, y = training_data()
    plain = plain_keras_samples_per_s(x, y)
    one = occam_fit_samples_per_s(1, x, y, cache)
    two = occam_fit_samples_per_s(2, x, y, cache)
    return {
        "rows": len(x),
        "batch_size": BATCH,
        "plain_keras_samples_per_s": plain,
        "fit_n1_samples_per_s": one,
        "fit_n2_samples_per_s": two,
        "fit_n1_vs_plain": one / plain,
        "fit_n2_vs_plain": two / plain,
    }


def bench_conversion(cache: str) -> dict[str, Any]:
    import pyarrow.parquet as pq
    from petastorm import make_batch_reader

    from occam import Dataset, start_cluster

    x, y = training_data()
    x = np.concatenate([x] * 4)
    y = np.concatenate([y] * 4)
    with start_cluster(n=2, progress=False) as cluster:
        import pandas as pd

        frame = pd.DataFrame({"features": list(x.reshape(len(x), -1)), "label": y})
        df = cluster.spark.createDataFrame(frame).repartition(4).cache()
        df.count()
        out = tempfile.mkdtemp(prefix="occam-bench-parquet-")
        try:
            started = time.perf_counter()
            df.write.mode("overwrite").parquet(out + "/plain")
            plain_write = time.perf_counter() - started
            started = time.perf_counter()
            data = Dataset.from_dataframe(df, feature_shape=(8, 8, 1), cache_dir=cache)
            convert = time.perf_counter() - started
            started = time.perf_counter()
            cached = Dataset.from_dataframe(df, feature_shape=(8, 8, 1), cache_dir=cache)
            convert_cached = time.perf_counter() - started
            assert cached.path == data.path
        finally:
            shutil.rmtree(out, ignore_errors=True)

    files = [u.removeprefix("file://") for u in data.file_urls()]
    started = time.perf_counter()
    rows = pq.read_table(files).num_rows
    arrow_s = time.perf_counter() - started
    started = time.perf_counter()
    seen = 0
    with make_batch_reader(data.file_urls(), num_epochs=1, workers_count=2) as reader:
        for batch in reader:
            seen += len(batch.label)
    petastorm_s = time.perf_counter() - started
    assert seen == rows
    return {
        "rows": rows,
        "df_write_parquet_s": plain_write,
        "dataset_build_s": convert,
        "dataset_build_cached_s": convert_cached,
        "conversion_ratio": convert / plain_write,
        "pyarrow_rows_per_s": rows / arrow_s,
        "petastorm_rows_per_s": seen / petastorm_s,
        "reader_ratio": (seen / petastorm_s) / (rows / arrow_s),
    }


def table(results: dict[str, Any]) -> str:
    s, t, c = results["startup"], results["training"], results["conversion"]
    rows = [
        (
            "start-up, n=2 (s)",
            f"{s['start_cluster_s']:.2f}",
            f"{s['bare_local_cluster_s']:.2f} (bare local-cluster)",
            f"{s['ratio']:.2f}",
            "<= 1.2",
        ),
        (
            "fit n=1 (samples/s)",
            f"{t['fit_n1_samples_per_s']:.0f}",
            f"{t['plain_keras_samples_per_s']:.0f} (plain tf.keras)",
            f"{t['fit_n1_vs_plain']:.2f}",
            ">= 0.8",
        ),
        (
            "fit n=2 (samples/s)",
            f"{t['fit_n2_samples_per_s']:.0f}",
            f"{t['plain_keras_samples_per_s']:.0f} (plain tf.keras)",
            f"{t['fit_n2_vs_plain']:.2f}",
            "-",
        ),
        (
            "Dataset build (s)",
            f"{c['dataset_build_s']:.2f}",
            f"{c['df_write_parquet_s']:.2f} (df.write.parquet)",
            f"{c['conversion_ratio']:.2f}",
            "<= 1.5",
        ),
        (
            "Dataset build, cached (s)",
            f"{c['dataset_build_cached_s']:.2f}",
            f"{c['df_write_parquet_s']:.2f} (df.write.parquet)",
            f"{c['dataset_build_cached_s'] / c['df_write_parquet_s']:.2f}",
            "-",
        ),
        (
            "reader (rows/s)",
            f"{c['petastorm_rows_per_s']:.0f}",
            f"{c['pyarrow_rows_per_s']:.0f} (pyarrow read_table)",
            f"{c['reader_ratio']:.2f}",
            "-",
        ),
    ]
    return format_table([("measure", "occam", "baseline", "ratio", "target"), *rows])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(Path(__file__).with_name("results") / "embedded.json"))
    parser.add_argument("--repeats", type=int, default=3, help="start-up runs of each kind (median)")
    args = parser.parse_args()

    cache = tempfile.mkdtemp(prefix="occam-bench-cache-")
    try:
        results = {
            "machine": {"cores": os.cpu_count(), "python": sys.version.split()[0], "platform": platform.platform()},
            "startup": bench_startup(args.repeats),
            "training": bench_training(cache),
            "conversion": bench_conversion(cache),
        }
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    print(table(results))
    write_results(args.out, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
