"""Benchmark of a served model (``occam.models.serve``) against ``model.predict`` in-process, on the same inputs.

    .venv/bin/python bench/bench_serving.py [--out bench/results/serving.json] [--requests 400] [--quick]

Prints a table and writes JSON. Issue 14: served prediction latency p50/p99 and throughput for 1 and 40
concurrent clients, each request one digit (8x8x1) as a JSON array, over keep-alive HTTP connections; the
baseline is Keras's ``model.predict`` on the same single example in this process (one thread, then 40 threads
sharing the model). The model is the digits CNN (``occam.examples.digits.build_cnn``), briefly trained and
published to a temporary store. ``--quick`` sends 40 requests per case, for a smoke run.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from report import format_table, write_results

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def run_clients(clients: int, requests: int, call: Callable[[int, Any], None], setup: Callable[[], Any]) -> dict:
    """``requests`` calls spread over ``clients`` threads; latency of each call, throughput of the whole."""
    latencies: list[float] = []
    lock = threading.Lock()
    per_client = max(1, requests // clients)
    barrier = threading.Barrier(clients + 1)
    errors: list[BaseException] = []

    def client() -> None:
        state = setup()
        mine = []
        barrier.wait()
        try:
            for i in range(per_client):
                started = time.perf_counter()
                call(i, state)
                mine.append(time.perf_counter() - started)
        except BaseException as exc:  # reported after the run
            errors.append(exc)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return {
        "clients": clients,
        "requests": len(latencies),
        "p50_ms": 1000 * percentile(latencies, 50),
        "p99_ms": 1000 * percentile(latencies, 99),
        "mean_ms": 1000 * statistics.fmean(latencies),
        "per_s": len(latencies) / elapsed,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "serving.json"))
    parser.add_argument("--requests", type=int, default=400, help="requests per case (400)")
    parser.add_argument("--quick", action="store_true", help="40 requests per case")
    args = parser.parse_args()
    total = 40 if args.quick else args.requests

    root = tempfile.mkdtemp(prefix="occam-bench-models-")
    os.environ["OCCAM_MODELS_DIR"] = root
    os.environ.setdefault("JUPYTERHUB_USER", "bench")
    import tensorflow as tf

    from occam.examples.digits import build_cnn, load_digits
    from occam.models.metadata import ModelMetadata
    from occam.models.serving import serve
    from occam.models.store import write_version

    x_train, y_train, x_test, _ = load_digits()
    tf.keras.utils.set_random_seed(0)
    model = build_cnn()
    model.fit(x_train, y_train, epochs=2, batch_size=64, verbose=0)
    labels = [str(d) for d in range(10)]
    meta = ModelMetadata("digits-cnn", os.environ["JUPYTERHUB_USER"], 0, [8, 8, 1], "float32", labels)
    entry = write_version(meta, lambda path: model.save(path))
    inputs = [x_test[i % len(x_test)][np.newaxis] for i in range(total)]
    bodies = [json.dumps({"instances": x.tolist()}).encode() for x in inputs]

    def local_call(i: int, _: Any) -> None:
        model.predict(inputs[i], verbose=0)

    model.predict(inputs[0], verbose=0)  # trace the predict function once, outside the timing
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "tensorflow": tf.__version__},
        "requests_per_case": total,
        "cases": {},
    }
    with serve(entry.metadata.ref) as service:
        target = urllib.parse.urlsplit(service.predict_url)
        headers = {"Authorization": f"token {service.token}", "Content-Type": "application/json"}

        def connect() -> http.client.HTTPConnection:
            return http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port, timeout=120)

        def served_call(i: int, connection: http.client.HTTPConnection) -> None:
            connection.request("POST", target.path, body=bodies[i % len(bodies)], headers=headers)
            response = connection.getresponse()
            payload = response.read()
            if response.status != 200:
                raise RuntimeError(f"{response.status}: {payload[:300]!r}")

        run_clients(1, 5, served_call, connect)  # warm the worker and the connection path
        # Served answers equal model.predict (the same model file, the same input).
        check = connect()
        check.request("POST", target.path, body=bodies[0], headers=headers)
        served = json.loads(check.getresponse().read())["predictions"][0]["probabilities"]
        assert np.allclose(served, model.predict(inputs[0], verbose=0)[0], atol=1e-5)
        for clients in (1, 40):
            try:
                local = run_clients(clients, total, local_call, lambda: None)
            except Exception as exc:  # Keras refusing concurrent predict calls: the 1-thread figure stands
                print(f"model.predict from {clients} threads failed ({exc!r}); using one thread's figures")
                local = dict(results["cases"]["1"]["in_process"], note=f"{clients} threads failed: {exc!r}")
            remote = run_clients(clients, total, served_call, connect)
            results["cases"][str(clients)] = {
                "served": remote,
                "in_process": local,
                "latency_ratio_p50": remote["p50_ms"] / local["p50_ms"],
                "throughput_ratio": remote["per_s"] / local["per_s"],
            }

    rows = [["clients", "measure", "served", "model.predict in-process", "ratio"]]
    for clients, case in results["cases"].items():
        served, local = case["served"], case["in_process"]
        rows.append(
            [
                clients,
                "p50 latency (ms)",
                f"{served['p50_ms']:.1f}",
                f"{local['p50_ms']:.1f}",
                f"{case['latency_ratio_p50']:.2f}",
            ]
        )
        rows.append(
            [
                clients,
                "p99 latency (ms)",
                f"{served['p99_ms']:.1f}",
                f"{local['p99_ms']:.1f}",
                f"{served['p99_ms'] / local['p99_ms']:.2f}",
            ]
        )
        rows.append(
            [
                clients,
                "throughput (req/s)",
                f"{served['per_s']:.1f}",
                f"{local['per_s']:.1f}",
                f"{case['throughput_ratio']:.2f}",
            ]
        )
    print(format_table(rows))
    write_results(args.out, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
