"""Runs a student looks back at, on the real embedded cluster: two real fits recorded in a real SQLite MLflow
store (``occam.runs()``), rank 0's TensorBoard logs read by a real TensorBoard, the real MLflow UI, both
reached over HTTP directly and through a real Jupyter server's jupyter-server-proxy, and stopped without a trace.

Epochs and steps are tiny: what is tested is what gets recorded, not how well the model learns.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import psutil
import pytest

import occam
from occam import Cluster, Dataset
from occam.backends.driver import scoped_environ
from occam.examples.digits import build_cnn
from occam.tracking.mlflow_store import open_client
from occam.tracking.paths import settings
from occam.tracking.servers import LocalServer

from .leakcheck import wait_until_clean
from .test_spark_ui_proxy import PREFIX, get, jupyter  # noqa: F401 - jupyter is a fixture

cloudpickle.register_pickle_by_value(sys.modules[__name__])

WAIT_SECONDS = 90.0


def build_small() -> Any:
    return build_cnn(learning_rate=0.003)


@pytest.fixture(scope="module")
def runs_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A runs folder and an experiment of this module's own (the other local tests' fits are recorded too)."""
    home = tmp_path_factory.mktemp("runs")
    with scoped_environ({"OCCAM_RUNS_DIR": str(home), "OCCAM_TRACKING_EXPERIMENT": "tracking-tests"}):
        yield home


@pytest.fixture(scope="module")
def two_fits(cluster: Cluster, digits_train: Dataset, digits: tuple, runs_home: Path) -> list[Any]:
    _, _, x_test, y_test = digits
    validation = Dataset.from_numpy(x_test[:200], y_test[:200], spark=cluster.spark)
    common: dict[str, Any] = {"batch_size": 32, "steps_per_epoch": 3, "validation_steps": 2, "progress": False}
    first = cluster.fit(build_cnn, digits_train, validation=validation, epochs=2, tensorboard=True, **common)
    second = cluster.fit(build_small, digits_train, validation=validation, epochs=3, **common)
    return [first, second]


def poll(what: str, check: Any, timeout: float = WAIT_SECONDS) -> Any:
    """``check()``'s first true answer; fails, saying ``what`` it waited for, after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:.0f} s for {what}")
        time.sleep(1.0)


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def facts(server: LocalServer) -> dict[str, Any]:
    """What must be gone once ``server`` stopped (as tests/local/leakcheck.py reads it)."""
    procs = [psutil.Process(server.pid), *psutil.Process(server.pid).children(recursive=True)]
    return {
        "processes": [(p.pid, p.create_time(), " ".join(p.cmdline()[:3])) for p in procs],
        "ports": [server.port],
        "work_dir": server.workdir,
        "reaper": server._reaper.pid,
    }


def test_two_fits_show_in_runs_with_their_parameters_and_metrics(two_fits: list[Any], digits_train: Dataset) -> None:
    frame = occam.runs()
    assert len(frame) == 2, frame
    newest, oldest = frame.iloc[0], frame.iloc[1]
    assert newest["params.model"] == "build_small" and oldest["params.model"] == "build_cnn"
    for row, result in ((oldest, two_fits[0]), (newest, two_fits[1])):
        assert row["status"] == "FINISHED"
        assert row["params.executors"] == "2" and row["params.gpus"] == "0" and row["params.batch_size"] == "32"
        assert row["params.epochs"] == str(len(result.epochs)) and row["params.dataset"] == digits_train.key
        for metric in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert row[f"metrics.{metric}"] == pytest.approx(result.history[metric][-1])
    assert float(newest["params.learning_rate"]) == pytest.approx(0.003)
    assert float(oldest["params.learning_rate"]) == pytest.approx(0.002)


def test_each_epoch_the_model_and_the_history_are_in_the_run(two_fits: list[Any], tmp_path: Path) -> None:
    import tensorflow as tf

    run_id = occam.runs().iloc[0]["run_id"]
    client = open_client(settings())
    history = client.get_metric_history(run_id, "val_loss")
    assert [m.step for m in sorted(history, key=lambda m: m.step)] == [1, 2, 3]
    assert sorted(a.path for a in client.list_artifacts(run_id)) == ["history.json", "model.keras"]
    saved = json.loads(Path(client.download_artifacts(run_id, "history.json", str(tmp_path))).read_text())
    assert saved == two_fits[1].history
    model = tf.keras.models.load_model(client.download_artifacts(run_id, "model.keras", str(tmp_path)))
    for mine, theirs in zip(model.get_weights(), two_fits[1].model.get_weights(), strict=True):
        assert (mine == theirs).all()


def test_tracking_off_records_nothing(cluster: Cluster, digits_train: Dataset, two_fits: list[Any]) -> None:
    cluster.fit(build_cnn, digits_train, epochs=1, batch_size=32, steps_per_epoch=2, progress=False, track=False)
    assert len(occam.runs()) == 2


def test_tensorboard_reads_rank_0s_logs_and_stops_without_a_trace(
    two_fits: list[Any],
    runs_home: Path,
    jupyter: Any,  # noqa: F811 - the fixture imported above
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run_name = occam.runs().iloc[1]["run_name"]
    assert list((runs_home / run_name / "tensorboard" / "train").glob("events.out.tfevents.*"))
    server = occam.tensorboard()
    try:
        train_run = f"{run_name}/tensorboard/train"
        poll(f"TensorBoard to list {train_run}", lambda: train_run in get_json(f"{server.url}/data/runs"))
        tags = poll(
            "TensorBoard's scalar tags",
            lambda: get_json(f"{server.url}/data/plugin/scalars/tags").get(train_run),
        )
        assert "epoch_loss" in tags and "epoch_accuracy" in tags
        # In JupyterHub the link goes through the notebook server's proxy, behind its login.
        monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", PREFIX)
        assert server.link == f"{PREFIX}proxy/{server.port}/"
        assert 'href="/user/student/proxy/' in server._repr_html_()
        status, _, body = get(f"{jupyter.url}{server.link}data/runs")
        assert status == 200 and train_run in json.loads(body)
        status, final_url, body = get(f"{jupyter.url}{server.link}data/runs", token=None)
        assert train_run not in body and (status in (401, 403) or "/login" in final_url), (status, final_url)
        left = facts(server)
    finally:
        server.stop()
    assert wait_until_clean(left, timeout=30) == []
    assert server.stopped and "stopped" in server._repr_html_()


def test_the_mlflow_ui_lists_the_experiment_and_its_runs(two_fits: list[Any]) -> None:
    with occam.mlflow_ui() as ui:
        assert ui.link == f"{ui.url}/"
        experiments = get_json(f"{ui.url}/ajax-api/2.0/mlflow/experiments/search?max_results=100")["experiments"]
        ours = next(e for e in experiments if e["name"] == "tracking-tests")
        request = urllib.request.Request(
            f"{ui.url}/ajax-api/2.0/mlflow/runs/search",
            data=json.dumps({"experiment_ids": [ours["experiment_id"]]}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            found = json.loads(response.read())["runs"]
        assert len(found) == 2
        with urllib.request.urlopen(f"{ui.url}/", timeout=30) as response:
            assert b"<!doctype html>" in response.read()[:100].lower()
        left = facts(ui)
    assert wait_until_clean(left, timeout=30) == []


KERNEL = """
import json, sys, time
import occam
server = occam.tensorboard(sys.argv[1])
print(json.dumps({"pid": server.pid, "port": server.port, "work_dir": server.workdir, "reaper": server._reaper.pid}))
sys.stdout.flush()
time.sleep(600)
"""


def test_a_killed_kernel_leaves_no_tensorboard_behind(tmp_path: Path) -> None:
    """The notebook's kernel killed (SIGKILL: no atexit runs); the reaper ends TensorBoard and frees its port."""
    kernel = subprocess.Popen(
        [sys.executable, "-c", KERNEL, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        assert kernel.stdout is not None
        started = json.loads(kernel.stdout.readline())
        server = psutil.Process(started["pid"])
        left = {
            "processes": [(server.pid, server.create_time(), "tensorboard")],
            "ports": [started["port"]],
            "work_dir": started["work_dir"],
            "reaper": started["reaper"],
        }
        kernel.send_signal(signal.SIGKILL)
        kernel.wait(timeout=30)
        assert wait_until_clean(left, timeout=60) == []
    finally:
        kernel.kill()
        kernel.wait(timeout=30)
