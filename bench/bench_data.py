"""Benchmarks of converting course data on the driver, each a ratio against pyarrow in the same run. No Spark.

    .venv/bin/python bench/bench_data.py [--out bench/results/data.json] [--rows 50000] [--quick]

Prints a table and writes JSON. Targets (issue 12): ``Dataset.from_numpy`` at least 0.5x the MB/s of
``pyarrow.parquet.write_table`` of the same arrays, for CIFAR-shaped (32x32x3) uint8 and float32 images;
an HDF5 file larger than those arrays converts with a peak RSS of a few row groups; Petastorm's reader
(and the training input pipeline that decodes the rows) against ``pyarrow.parquet.read_table``.
``--quick`` uses 2,000 rows, for a smoke run; the full sizes need about 3 GB of memory and disk.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
from report import format_table, write_results

ROOT = Path(__file__).resolve().parents[1]


def cifar_shaped(rows: int, dtype: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (rows, 32, 32, 3), dtype=np.uint8)
    return (x if dtype == "uint8" else x.astype(dtype) / 255), rng.integers(0, 10, rows)


def plain_write_s(x: np.ndarray, y: np.ndarray, out: str) -> float:
    """``pq.write_table`` of the same arrays as one table (the rows as fixed-size binary, zero-copy), the
    same row groups and encoding options: what the conversion costs beyond writing the bytes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from occam.data import writers

    started = time.perf_counter()
    row_bytes = x[0].nbytes
    features = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(row_bytes), len(x), [None, pa.py_buffer(np.ascontiguousarray(x).reshape(-1).view(np.uint8))]
    )
    table = pa.table({"features": features, "label": pa.array(y)})
    group = writers.rows_per_group(len(x), row_bytes)
    pq.write_table(table, out, row_group_size=group, use_dictionary=["label"], write_statistics=["label"])
    return time.perf_counter() - started


def bench_write(rows: int, dtype: str, cache: str) -> dict[str, Any]:
    from occam import Dataset

    x, y = cifar_shaped(rows, dtype)
    megabytes = (x.nbytes + y.nbytes) / 1e6
    out = tempfile.mkdtemp(prefix="occam-bench-plain-")
    try:
        plain = min(plain_write_s(x, y, f"{out}/plain-{i}.parquet") for i in range(2))
    finally:
        shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    data = Dataset.from_numpy(x, y, cache_dir=cache)
    convert = time.perf_counter() - started
    started = time.perf_counter()
    assert Dataset.from_numpy(x, y, cache_dir=cache).path == data.path
    cached = time.perf_counter() - started
    return {
        "rows": rows,
        "dtype": dtype,
        "megabytes": megabytes,
        "write_table_mb_per_s": megabytes / plain,
        "from_numpy_mb_per_s": megabytes / convert,
        "ratio": plain / convert,
        "from_numpy_cached_s": cached,
        "files": len(data.file_urls()),
        "path": data.path,
    }


def bench_hdf5_memory(rows: int, workdir: str) -> dict[str, Any]:
    """Peak RSS of a fresh process converting an HDF5 file of uint8 images, against the file's size."""
    import h5py

    path = os.path.join(workdir, "big.h5")
    block = 5_000
    with h5py.File(path, "w") as f:
        images = f.create_dataset("x", shape=(rows, 32, 32, 3), dtype=np.uint8)
        labels = f.create_dataset("y", shape=(rows,), dtype=np.int64)
        for start in range(0, rows, block):
            stop = min(rows, start + block)
            x, y = cifar_shaped(stop - start, "uint8", seed=start)
            images[start:stop], labels[start:stop] = x, y
    code = textwrap.dedent(
        f"""
        import json, time, h5py, pyarrow.parquet, pyspark.sql  # imports are not the conversion
        from occam import Dataset
        from occam.data import writers

        def status(field):  # KiB. VmHWM: peak RSS of this process (ru_maxrss includes the parent at fork)
            return int(open('/proc/self/status').read().split(field + ':')[1].split()[0])

        def rss():
            return status('VmRSS')

        real_write, groups = writers.StagedWrite.write, []

        def write(self, table):
            real_write(self, table)
            groups.append(rss())

        writers.StagedWrite.write = write
        open('/proc/self/clear_refs', 'w').write('5')  # resets VmHWM to the current RSS
        before = rss()
        started = time.perf_counter()
        data = Dataset.from_hdf5({path!r}, cache_dir={os.path.join(workdir, "cache")!r})
        seconds = time.perf_counter() - started
        after = status('VmHWM')
        print(json.dumps({{"before": before * 1024, "after": after * 1024, "s": seconds, "rows": len(data),
                          "groups": [g * 1024 for g in groups]}}))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    measured = json.loads(out.stdout.strip().splitlines()[-1])
    size = os.path.getsize(path)
    return {
        "rows": rows,
        "file_mb": size / 1e6,
        "peak_rss_mb": measured["after"] / 1e6,
        "rss_before_mb": measured["before"] / 1e6,
        "rss_growth_mb": (measured["after"] - measured["before"]) / 1e6,
        "row_groups": len(measured["groups"]),
        "rss_after_each_group_mb": [round(g / 1e6) for g in measured["groups"]],
        "seconds": measured["s"],
        "mb_per_s": size / 1e6 / measured["s"],
    }


def bench_read(path: str) -> dict[str, Any]:
    """Rows/s of Petastorm's batch reader and of the training input pipeline (make_tf_dataset, the rows
    decoded and cast as each rank does), against ``pq.read_table`` of the same files."""
    import pyarrow.parquet as pq
    from petastorm import make_batch_reader

    from occam import Dataset

    data = Dataset._loaded(path)
    files = [u.removeprefix("file://") for u in data.file_urls()]
    started = time.perf_counter()
    rows = pq.read_table(files).num_rows
    arrow = rows / (time.perf_counter() - started)

    started = time.perf_counter()
    seen = 0
    with make_batch_reader(data.file_urls(), num_epochs=1, workers_count=2) as reader:
        for batch in reader:
            seen += len(batch.label)
    petastorm = seen / (time.perf_counter() - started)

    import tensorflow as tf
    from petastorm.spark.spark_dataset_converter import SparkDatasetConverter

    from occam.training.rank import _to_xy

    converter = SparkDatasetConverter(data.url, data.file_urls(), len(data))
    started = time.perf_counter()
    seen = 0
    with converter.make_tf_dataset(batch_size=64, num_epochs=1, workers_count=2) as batches:
        for x, _ in _to_xy(data, batches, tf.float32):
            seen += int(x.shape[0])
    pipeline = seen / (time.perf_counter() - started)
    return {
        "rows": rows,
        "pyarrow_rows_per_s": arrow,
        "petastorm_rows_per_s": petastorm,
        "tf_pipeline_rows_per_s": pipeline,
        "petastorm_ratio": petastorm / arrow,
        "tf_pipeline_ratio": pipeline / arrow,
    }


def table(results: dict[str, Any]) -> str:
    rows = []
    for w in results["write"]:
        rows.append(
            (
                f"from_numpy {w['rows']:,} x 32x32x3 {w['dtype']}, {w['megabytes']:.0f} MB (MB/s)",
                f"{w['from_numpy_mb_per_s']:.0f}",
                f"{w['write_table_mb_per_s']:.0f} (pq.write_table)",
                f"{w['ratio']:.2f}",
                ">= 0.5",
            )
        )
        rows.append((f"  cached, {w['dtype']} (s)", f"{w['from_numpy_cached_s']:.2f}", "-", "-", "-"))
    h = results["hdf5"]
    rows.append(
        (
            f"from_hdf5 {h['rows']:,} uint8 images, {h['file_mb']:.0f} MB file: peak RSS growth (MB)",
            f"{h['rss_growth_mb']:.0f}",
            f"{h['file_mb']:.0f} (the file)",
            f"{h['rss_growth_mb'] / h['file_mb']:.2f}",
            "a few row groups",
        )
    )
    rows.append(
        (f"  from_hdf5 throughput (MB/s), peak RSS {h['peak_rss_mb']:.0f} MB", f"{h['mb_per_s']:.0f}", "-", "-", "-")
    )
    for r in results["read"]:
        rows.append(
            (
                f"Petastorm batch reader, {r['dtype']} (rows/s)",
                f"{r['petastorm_rows_per_s']:.0f}",
                f"{r['pyarrow_rows_per_s']:.0f} (pq.read_table)",
                f"{r['petastorm_ratio']:.2f}",
                "-",
            )
        )
        rows.append(
            (
                f"  make_tf_dataset + decode, {r['dtype']} (rows/s)",
                f"{r['tf_pipeline_rows_per_s']:.0f}",
                f"{r['pyarrow_rows_per_s']:.0f} (pq.read_table)",
                f"{r['tf_pipeline_ratio']:.2f}",
                "-",
            )
        )
    return format_table([("measure", "occam", "baseline", "ratio", "target"), *rows])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(Path(__file__).with_name("results") / "data.json"))
    parser.add_argument("--rows", type=int, default=50_000, help="CIFAR-shaped images per array")
    parser.add_argument("--quick", action="store_true", help="2,000 rows: a smoke run (what CI may run)")
    args = parser.parse_args()
    rows = 2_000 if args.quick else args.rows

    workdir = tempfile.mkdtemp(prefix="occam-bench-data-")
    try:
        cache = os.path.join(workdir, "cache")
        write = [bench_write(rows, dtype, cache) for dtype in ("uint8", "float32")]
        read = [{"dtype": w["dtype"], **bench_read(w["path"])} for w in write]
        results = {
            "machine": {"cores": os.cpu_count(), "python": sys.version.split()[0], "platform": platform.platform()},
            "write": [{k: v for k, v in w.items() if k != "path"} for w in write],
            # larger than the float32 arrays above
            "hdf5": bench_hdf5_memory(rows * 5, workdir),
            "read": read,
        }
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(table(results))
    write_results(args.out, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
