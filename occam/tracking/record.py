"""What a ``fit`` records: its parameters and its metrics, as plain values (no MLflow, no TensorFlow here)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FitRecord:
    """The facts of one ``fit`` that a run records, taken by ``fit`` before the ranks start."""

    run_id: str
    model: str
    executors: int
    gpus: int
    epochs: int
    batch_size: int
    dataset: str
    rows: int
    validation: str | None = None
    learning_rate: float | None = None
    learning_rate_schedule: str | None = None
    scale_lr: bool = False
    resume: bool = False
    steps_per_epoch: int | None = None
    tensorboard_dir: str | None = None


def run_params(record: FitRecord) -> dict[str, str]:
    """The MLflow parameters of ``record`` (text, as MLflow keeps them); what was not given is left out."""
    params: dict[str, Any] = {
        "model": record.model,
        "executors": record.executors,
        "gpus": record.gpus,
        "epochs": record.epochs,
        "batch_size": record.batch_size,
        "global_batch_size": record.batch_size * record.executors,
        "dataset": record.dataset,
        "rows": record.rows,
        "validation_dataset": record.validation,
        "learning_rate": record.learning_rate,
        "learning_rate_schedule": record.learning_rate_schedule,
        "scale_lr": record.scale_lr,
        "resume": record.resume,
        "steps_per_epoch": record.steps_per_epoch,
    }
    return {key: str(value) for key, value in params.items() if value is not None}


def run_tags(record: FitRecord, user: str | None) -> dict[str, str]:
    """The run's tags: its name (Occam's run id), where its TensorBoard logs are, and whose it is."""
    tags = {"mlflow.runName": record.run_id, "occam.run_id": record.run_id}
    if record.tensorboard_dir:
        tags["occam.tensorboard_dir"] = record.tensorboard_dir
    if user:
        tags["mlflow.user"] = user
    return tags


def learning_rate_of(model: Any) -> tuple[float | None, str | None]:
    """The learning rate of ``model``'s optimizer as ``(rate, None)``, or ``(initial rate or None, schedule
    class name)`` when it follows a schedule; ``(None, None)`` when there is no rate to read."""
    optimizer = getattr(model, "optimizer", None)
    # Keras optimizers answer ``learning_rate`` with the schedule's current value; the schedule is underneath.
    for rate in (getattr(optimizer, "_learning_rate", None), getattr(optimizer, "learning_rate", None)):
        if callable(rate) and not hasattr(rate, "numpy"):  # a LearningRateSchedule
            return _number(getattr(rate, "initial_learning_rate", None)), type(rate).__name__
    rate = getattr(optimizer, "learning_rate", None)
    return (None, None) if rate is None else (_number(rate), None)


def _number(value: Any) -> float | None:
    try:
        number = float(value.numpy() if hasattr(value, "numpy") else value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def final_metrics(history: dict[str, list[float]]) -> dict[str, float]:
    """Each metric's last value (what ``occam.runs()`` compares)."""
    return {key: values[-1] for key, values in history.items() if values}
