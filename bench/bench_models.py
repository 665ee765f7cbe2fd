"""The model store's cost over plain Keras: ``occam.models.publish`` / ``load`` against ``model.save`` /
``keras.models.load_model`` of the same model, in the same run. No Spark.

    .venv/bin/python bench/bench_models.py [--out bench/results/models.json] [--repeats 5] [--quick]

Prints a table and writes JSON. Target (issue 14): publish and load within 1.5x of ``model.save`` and
``load_model`` (the store adds metadata, an fsync of each file and a rename). Two models: the digits CNN
(about 85k parameters) and a wide dense network (about 8M parameters, 32 MB of weights), where the
file's size dominates. ``--quick`` runs the small model twice, for a smoke run.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from report import format_table, write_results

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def wide_dense() -> Any:
    import tensorflow as tf

    model = tf.keras.Sequential(
        [
            tf.keras.layers.Input(shape=(1024,)),
            tf.keras.layers.Dense(2048, activation="relu"),
            tf.keras.layers.Dense(2048, activation="relu"),
            tf.keras.layers.Dense(1024, activation="relu"),
            tf.keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def median_s(action: Callable[[int], object], repeats: int) -> float:
    """Median wall time of ``action(i)`` over ``repeats`` runs, after one warm-up run (graph tracing, imports)."""
    action(-1)
    times = []
    for i in range(repeats):
        started = time.perf_counter()
        action(i)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def bench_model(label: str, model: Any, repeats: int, work: Path) -> dict[str, Any]:
    import tensorflow as tf

    import occam.models

    plain_dir = work / f"plain-{label}"
    plain_dir.mkdir()

    def save(i: int) -> None:
        model.save(plain_dir / f"{i}.keras")

    def publish(i: int) -> None:
        occam.models.publish(model, f"bench-{label}", description="bench")

    save_s = median_s(save, repeats)
    publish_s = median_s(publish, repeats)
    load_s = median_s(lambda i: tf.keras.models.load_model(plain_dir / "0.keras"), repeats)
    store_load_s = median_s(lambda i: occam.models.load(f"bench-{label}"), repeats)
    size = os.path.getsize(plain_dir / "0.keras")
    return {
        "model": label,
        "parameters": int(model.count_params()),
        "file_mb": size / 1e6,
        "publish_s": publish_s,
        "save_s": save_s,
        "publish_ratio": publish_s / save_s,
        "load_s": store_load_s,
        "load_model_s": load_s,
        "load_ratio": store_load_s / load_s,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "models.json"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from occam.examples.digits import build_cnn

    repeats = 2 if args.quick else args.repeats
    models = [("digits-cnn", build_cnn)] + ([] if args.quick else [("wide-dense", wide_dense)])
    with tempfile.TemporaryDirectory(prefix="occam-bench-models-") as tmp:
        work = Path(tmp)
        # The store lives in the same temporary folder as the plain saves: the same filesystem for both.
        os.environ["OCCAM_MODELS_DIR"] = str(work / "models")
        rows = [bench_model(label, build(), repeats, work) for label, build in models]

    table = [["model", "params", "file MB", "publish s", "model.save s", "ratio", "load s", "load_model s", "ratio"]]
    for r in rows:
        table.append(
            [
                r["model"],
                f"{r['parameters']:,}",
                f"{r['file_mb']:.1f}",
                f"{r['publish_s']:.3f}",
                f"{r['save_s']:.3f}",
                f"{r['publish_ratio']:.2f}",
                f"{r['load_s']:.3f}",
                f"{r['load_model_s']:.3f}",
                f"{r['load_ratio']:.2f}",
            ]
        )
    print(format_table(table))
    import tensorflow as tf

    write_results(
        args.out,
        {
            "bench": "models",
            "repeats": repeats,
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "cores": os.cpu_count(),
            "results": rows,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
