"""The pure parts of occam.tracking: settings and paths from the config, a fit's parameters, UI links and
command lines; and the recorder against a real SQLite MLflow store (skipped without MLflow)."""

from __future__ import annotations

import pickle
import re
import warnings
from pathlib import Path

import pytest

from occam.errors import ConfigError
from occam.links import browser_link
from occam.tracking import recorder as recorder_module
from occam.tracking.mlflow_ui import mlflow_ui_command
from occam.tracking.paths import new_run_id, settings, tensorboard_dir
from occam.tracking.record import FitRecord, final_metrics, learning_rate_of, run_params, run_tags
from occam.tracking.tensorboard import WithTensorBoard, tensorboard_command


def record(**changes: object) -> FitRecord:
    values: dict[str, object] = {
        "run_id": "20261201-104501-build_model-3fa2",
        "model": "build_model",
        "executors": 2,
        "gpus": 0,
        "epochs": 3,
        "batch_size": 32,
        "dataset": "numpy-abc123",
        "rows": 1000,
    }
    values.update(changes)
    return FitRecord(**values)  # type: ignore[arg-type]


# -- settings and paths --------------------------------------------------------------------------------


def test_runs_and_the_sqlite_store_live_under_the_cache_dir_by_default(tmp_path: Path) -> None:
    found = settings(environ={"OCCAM_CACHE_DIR": str(tmp_path)})
    assert found.enabled is True
    assert found.runs_dir == str(tmp_path / "runs")
    assert found.uri == f"sqlite:///{tmp_path}/mlflow.db"
    assert found.database == f"{tmp_path}/mlflow.db"
    assert found.artifact_root == f"file://{tmp_path}/runs/mlflow-artifacts"
    assert found.experiment == "occam"
    assert tensorboard_dir(found.runs_dir, "r1") == str(tmp_path / "runs" / "r1" / "tensorboard")


def test_runs_dir_and_uri_from_the_environment(tmp_path: Path) -> None:
    env = {
        "OCCAM_RUNS_DIR": str(tmp_path / "elsewhere"),
        "OCCAM_TRACKING_URI": "https://mlflow.course.example.org",
        "OCCAM_TRACKING_EXPERIMENT": "ml-2026",
    }
    found = settings(environ=env)
    assert found.runs_dir == str(tmp_path / "elsewhere")
    assert found.uri == "https://mlflow.course.example.org"
    assert found.experiment == "ml-2026"
    # A server keeps the artifacts where it is configured to; there is no local database.
    assert found.local_store is False and found.artifact_root is None and found.database is None


@pytest.mark.parametrize(
    ("text", "enabled"), [("0", False), ("false", False), ("Off", False), ("1", True), ("yes", True)]
)
def test_tracking_turns_off_by_environment(text: str, enabled: bool) -> None:
    assert settings(environ={"OCCAM_TRACKING": text}).enabled is enabled


def test_the_argument_wins_over_the_environment() -> None:
    assert settings(False, environ={"OCCAM_TRACKING": "1"}).enabled is False
    assert settings(True, environ={"OCCAM_TRACKING": "0"}).enabled is True


def test_a_bad_switch_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="OCCAM_TRACKING='maybe' is not a valid boolean"):
        settings(environ={"OCCAM_TRACKING": "maybe"})


def test_run_ids_are_readable_sortable_and_safe_as_folder_names() -> None:
    first = new_run_id("build <my> model!", now=0)
    assert re.fullmatch(r"\d{8}-\d{6}-build_my_model-[0-9a-f]{4}", first), first
    assert new_run_id("", now=0).split("-")[2] == "model"
    assert new_run_id("m", now=0) != new_run_id("m", now=0)  # the random tail tells same-second runs apart


# -- what a fit records --------------------------------------------------------------------------------


def test_run_params_from_a_fit() -> None:
    params = run_params(record(learning_rate=0.001, validation="numpy-def456", steps_per_epoch=5))
    assert params == {
        "model": "build_model",
        "executors": "2",
        "gpus": "0",
        "epochs": "3",
        "batch_size": "32",
        "global_batch_size": "64",
        "dataset": "numpy-abc123",
        "rows": "1000",
        "validation_dataset": "numpy-def456",
        "learning_rate": "0.001",
        "scale_lr": "False",
        "resume": "False",
        "steps_per_epoch": "5",
    }


def test_what_was_not_given_is_not_a_parameter() -> None:
    params = run_params(record())
    assert "learning_rate" not in params and "validation_dataset" not in params and "steps_per_epoch" not in params


def test_run_tags_name_the_run_its_logs_and_its_owner() -> None:
    tags = run_tags(record(tensorboard_dir="/runs/r/tensorboard"), user="ada")
    assert tags == {
        "mlflow.runName": "20261201-104501-build_model-3fa2",
        "occam.run_id": "20261201-104501-build_model-3fa2",
        "occam.tensorboard_dir": "/runs/r/tensorboard",
        "mlflow.user": "ada",
    }
    assert "mlflow.user" not in run_tags(record(), user=None)


def test_final_metrics_are_the_last_values() -> None:
    assert final_metrics({"loss": [0.9, 0.5], "val_loss": [1.0, 0.7], "empty": []}) == {"loss": 0.5, "val_loss": 0.7}


def test_learning_rate_of_keras_optimizers() -> None:
    """Real Keras optimizers: a plain rate, a schedule, and a model without one."""
    tf = pytest.importorskip("tensorflow")
    model = tf.keras.Sequential([tf.keras.Input((2,)), tf.keras.layers.Dense(1)])
    model.compile(optimizer=tf.keras.optimizers.Adam(0.005), loss="mse")
    rate, schedule = learning_rate_of(model)
    assert rate == pytest.approx(0.005) and schedule is None
    decay = tf.keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.9)
    model.compile(optimizer=tf.keras.optimizers.SGD(decay), loss="mse")
    assert learning_rate_of(model) == (pytest.approx(0.1), "ExponentialDecay")
    assert learning_rate_of(object()) == (None, None)


# -- links and command lines ---------------------------------------------------------------------------


def test_links_go_through_the_notebook_servers_proxy_in_jupyterhub() -> None:
    hub = {"JUPYTERHUB_SERVICE_PREFIX": "/user/ada/"}
    assert browser_link("http://127.0.0.1:6006", "/", hub) == "/user/ada/proxy/6006/"
    assert browser_link("http://127.0.0.1:4040/", "/jobs/", hub) == "/user/ada/proxy/4040/jobs/"
    assert browser_link("http://127.0.0.1:6006", "/", {}) == "http://127.0.0.1:6006/"
    assert browser_link("http://127.0.0.1:4040/", "jobs/", {}) == "http://127.0.0.1:4040/jobs/"
    with pytest.raises(ValueError, match="names no port"):
        browser_link("http://localhost", "/", hub)


def test_the_uis_listen_on_loopback_only() -> None:
    assert "--host=127.0.0.1" in tensorboard_command("/runs", 6006)
    assert "--port=6006" in tensorboard_command("/runs", 6006)
    command = mlflow_ui_command("sqlite:////c/mlflow.db", "file:///runs/mlflow-artifacts", 5000)
    assert command[1:3] == ["-m", "occam.tracking.mlflow_app"]
    assert {"--host=127.0.0.1", "--port=5000", "--store=sqlite:////c/mlflow.db"} <= set(command)
    assert "--artifact-root=file:///runs/mlflow-artifacts" in command


def test_the_tensorboard_callbacks_pickle_to_the_ranks_and_keep_the_students_own() -> None:
    tf = pytest.importorskip("tensorflow")
    made = pickle.loads(pickle.dumps(WithTensorBoard("/tmp/tb", [tf.keras.callbacks.TerminateOnNaN()])))()
    assert [type(c).__name__ for c in made] == ["TerminateOnNaN", "TensorBoard"]
    assert made[1].log_dir == "/tmp/tb"
    assert [type(c).__name__ for c in WithTensorBoard("/tmp/tb")()] == ["TensorBoard"]


# -- the recorder on a real SQLite store ---------------------------------------------------------------


@pytest.fixture
def fresh_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recorder_module, "_warned", recorder_module.threading.Event())


def test_a_fit_is_recorded_with_its_epochs_history_and_status(tmp_path: Path, fresh_warning: None) -> None:
    pytest.importorskip("mlflow")
    pytest.importorskip("pandas")  # MLflow's client needs it
    from occam.tracking.mlflow_store import open_client, runs_frame

    found = settings(environ={"OCCAM_CACHE_DIR": str(tmp_path)})
    recorder = recorder_module.Recorder(found, record(learning_rate=0.01), user="ada")
    on_epoch_end = recorder.chain(None)
    on_epoch_end(1, {"loss": 0.9, "accuracy": 0.5})
    # Epoch 2's event did not come through; the history has it.
    history = {"loss": [0.9, 0.6, 0.4], "accuracy": [0.5, 0.7, 0.8]}
    with warnings.catch_warnings():
        warnings.simplefilter("error", recorder_module.TrackingWarning)
        recorder.epoch(3, {"loss": 0.4, "accuracy": 0.8})
        recorder.finish(recorder_module.FINISHED, history, [1, 2, 3])
    assert not recorder.failed
    frame = runs_frame(found)
    assert list(frame["run_name"]) == ["20261201-104501-build_model-3fa2"]
    row = frame.iloc[0]
    assert row["status"] == "FINISHED" and row["params.learning_rate"] == "0.01" and row["params.executors"] == "2"
    assert row["metrics.loss"] == pytest.approx(0.4) and row["metrics.accuracy"] == pytest.approx(0.8)
    client = open_client(found)
    steps = [(m.step, m.value) for m in client.get_metric_history(row["run_id"], "loss")]
    assert sorted(steps) == [(1, 0.9), (2, 0.6), (3, 0.4)]
    artifacts = [a.path for a in client.list_artifacts(row["run_id"])]
    assert artifacts == ["history.json"]
    assert (tmp_path / "runs" / "mlflow-artifacts").is_dir()


def test_a_store_that_fails_warns_once_and_never_raises(tmp_path: Path, fresh_warning: None) -> None:
    pytest.importorskip("mlflow")
    pytest.importorskip("pandas")  # MLflow's client needs it
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    broken = settings(environ={"OCCAM_TRACKING_URI": f"sqlite:///{blocker}/sub/mlflow.db"})
    with pytest.warns(recorder_module.TrackingWarning, match="not recorded in MLflow.*OCCAM_TRACKING=0"):
        first = recorder_module.Recorder(broken, record())
        first.chain(None)(1, {"loss": 1.0})
        first.finish(recorder_module.FINISHED, {"loss": [1.0]}, [1])
    assert first.failed
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second failing fit in the same process says nothing more
        second = recorder_module.Recorder(broken, record())
        second.finish(recorder_module.FAILED)
    assert second.failed


def test_tracking_off_records_nothing(tmp_path: Path) -> None:
    off = settings(False, environ={"OCCAM_CACHE_DIR": str(tmp_path)})
    recorder = recorder_module.recorder_for(off, record())
    callback = recorder.chain(None)
    assert callback is None
    recorder.finish(recorder_module.FINISHED, {"loss": [1.0]}, [1])
    assert list(tmp_path.iterdir()) == []


def test_fit_takes_true_a_folder_or_nothing_for_tensorboard() -> None:
    from occam.training.runs import tensorboard_logdir

    for off in (None, False):
        assert tensorboard_logdir(None, off, "/runs", "r1") is None  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="tensorboard=5: pass True .* or a folder"):
        tensorboard_logdir(None, 5, "/runs", "r1")  # type: ignore[arg-type]
