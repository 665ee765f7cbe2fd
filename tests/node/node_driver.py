"""A stand-in notebook kernel for the real node: start_cluster on Kubernetes, then obey commands on stdin.

Usage: ``python node_driver.py '{"name": ..., "n": 2, "timeout": 300}'`` with ``OCCAM_K8S_*`` set. Prints one
JSON line per event: ``{"started": name}``, then ``{"executors": n, "seconds": s}`` or ``{"error": type,
"message": ...}``. Commands, one per line:

``job TASKS SECONDS``
    A Spark job of TASKS tasks that each sleep SECONDS; prints ``{"job_started": true}`` once it runs, then
    ``{"job": [[task, attempt], ...]}`` (the attempt number of the run that produced each result).
``fit EPOCHS``
    ``cluster.fit`` of the digits CNN; prints ``{"epoch": i}`` after each epoch, then ``{"accuracy": a}``
    (held-out, evaluated here) or ``{"error": type, "message": ...}``.
``executors``
    ``{"executors": n}``: how many executors are registered now.
``stop``
    Stops the cluster, prints ``{"stopped": true}`` and exits.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import Any

from occam import Dataset, OccamError, start_cluster


def say(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


def sleepy_task(seconds: float) -> Any:
    def run(index: int) -> tuple[int, int]:
        from pyspark import TaskContext

        time.sleep(seconds)
        context = TaskContext.get()
        return index, context.attemptNumber() if context else -1

    return run


def run_job(cluster: Any, tasks: int, seconds: float) -> None:
    sc = cluster.spark.sparkContext
    rdd = sc.parallelize(range(tasks), tasks).map(sleepy_task(seconds))
    started = threading.Timer(1.0, lambda: say(job_started=True))
    started.start()
    say(job=sorted(rdd.collect()))


def run_fit(cluster: Any, epochs: int) -> None:
    from occam.examples.digits import build_cnn, load_digits

    x_train, y_train, x_test, y_test = load_digits()
    train = Dataset.from_numpy(x_train, y_train, spark=cluster.spark)
    try:
        result = cluster.fit(
            build_cnn,
            train,
            epochs=epochs,
            batch_size=32,
            progress=False,
            on_epoch_end=lambda epoch, logs: say(epoch=epoch, logs=logs),
        )
    except OccamError as exc:
        print(f"fit failed: {exc}", file=sys.stderr, flush=True)
        say(error=type(exc).__name__, message=str(exc))
        return
    _, accuracy = result.model.evaluate(x_test, y_test, verbose=0)
    say(accuracy=float(accuracy), ranks=result.ranks)


def main() -> None:
    # The driver runs as root on this machine, the executors as the image's user: files the driver
    # creates in the shared folder (Spark's output directories, checkpoint folders) must be writable by them.
    os.umask(0)
    options = json.loads(sys.argv[1])
    name = options.pop("name")
    say(started=name)
    began = time.monotonic()
    try:
        cluster = start_cluster(backend="kubernetes", name=name, progress=False, **options)
    except OccamError as exc:
        say(error=type(exc).__name__, message=str(exc))
        return
    say(name=cluster.name, executors=cluster.executor_count(), seconds=time.monotonic() - began)
    for line in sys.stdin:
        command, *args = line.split()
        if command == "job":
            run_job(cluster, int(args[0]), float(args[1]))
        elif command == "fit":
            run_fit(cluster, int(args[0]))
        elif command == "executors":
            say(executors=cluster.executor_count())
        elif command == "stop":
            cluster.stop()
            say(stopped=True)
            return


if __name__ == "__main__":
    main()
