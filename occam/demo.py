"""``occam demo``: train a small CNN on scikit-learn's digits, data-parallel on an embedded cluster."""

from __future__ import annotations

import time
from dataclasses import dataclass

from occam.cluster import start_cluster
from occam.data.dataset import Dataset
from occam.examples.digits import build_cnn, load_digits


@dataclass(frozen=True)
class DemoResult:
    held_out_accuracy: float
    epochs: int
    executors: int
    seconds: float


def _print_epoch(epoch: int, logs: dict[str, float]) -> None:
    print(f"epoch {epoch}: " + " ".join(f"{k}={v:.4f}" for k, v in logs.items()), flush=True)


def run_demo(
    executors: int = 2,
    epochs: int = 8,
    batch_size: int = 32,
    backend: str | None = None,
    progress: bool = True,
    verbose: bool | None = None,
) -> DemoResult:
    started = time.perf_counter()
    # start_cluster checks the request before anything starts or loads.
    with start_cluster(n=executors, backend=backend, progress=progress, verbose=verbose) as cluster:
        print(f"cluster {cluster.name}: {cluster.n} executors ready, Spark UI at {cluster.dashboard_link}")
        x_train, y_train, x_test, y_test = load_digits()
        print(f"digits: {len(x_train)} training and {len(x_test)} held-out 8x8 images (shipped with scikit-learn)")
        train = Dataset.from_numpy(x_train, y_train, spark=cluster.spark)
        test = Dataset.from_numpy(x_test, y_test, spark=cluster.spark)
        print(f"dataset: {len(train)} rows converted for Petastorm at {train.path}")
        result = cluster.fit(
            build_cnn,
            train,
            validation=test,
            epochs=epochs,
            batch_size=batch_size,
            progress=progress,
            # Without progress bars (logs, CI) the per-epoch metrics are still printed, one line each.
            on_epoch_end=None if progress else _print_epoch,
        )
    _, accuracy = result.model.evaluate(x_test, y_test, verbose=0)
    seconds = time.perf_counter() - started
    print(
        f"trained on {result.ranks} Horovod ranks at {result.samples_per_second:.0f} samples/s; "
        f"held-out accuracy: {accuracy:.4f} ({seconds:.0f} s in all)"
    )
    return DemoResult(held_out_accuracy=float(accuracy), epochs=epochs, executors=executors, seconds=seconds)
