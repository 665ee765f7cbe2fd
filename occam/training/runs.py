"""What ``fit`` tells :mod:`occam.tracking`: the run's record and, when asked for, its TensorBoard folder."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from occam.backends import unshared_path_problem
from occam.data.dataset import Dataset
from occam.errors import ConfigError
from occam.tracking.paths import tensorboard_dir
from occam.tracking.record import FitRecord, learning_rate_of

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def tensorboard_logdir(spark: SparkSession, tensorboard: object, runs_dir: str, run_id: str) -> str | None:
    """Where rank 0 writes TensorBoard logs: ``None`` (``tensorboard`` false), the run's own folder (True), or
    the folder given. Refused, before anything starts, when the executors would not see it (the backend says)."""
    if tensorboard is None or tensorboard is False:
        return None
    if tensorboard is True:
        directory = tensorboard_dir(runs_dir, run_id)
    elif isinstance(tensorboard, str | os.PathLike):
        directory = os.path.abspath(os.path.expanduser(os.fspath(tensorboard)))
    else:
        raise ConfigError(
            f"tensorboard={tensorboard!r}: pass True (logs in this run's folder under the runs directory) or a folder"
        )
    problem = unshared_path_problem(spark, directory, writer="rank 0 writes TensorBoard logs")
    if problem:
        raise ConfigError(problem)
    return directory


def fit_record(
    *,
    run_id: str,
    model_name: str,
    model: Any,
    executors: int,
    gpu: bool,
    epochs: int,
    batch_size: int,
    dataset: Dataset,
    validation: Dataset | None,
    scale_lr: bool,
    resume: bool,
    steps_per_epoch: int | None,
    tensorboard_dir: str | None,
) -> FitRecord:
    """The facts of a fit that its MLflow run records (one GPU per executor when ``gpu``)."""
    rate, schedule = learning_rate_of(model)
    return FitRecord(
        run_id=run_id,
        model=model_name,
        executors=executors,
        gpus=executors if gpu else 0,
        epochs=epochs,
        batch_size=batch_size,
        dataset=dataset.key,
        rows=len(dataset),
        validation=validation.key if validation is not None else None,
        learning_rate=rate,
        learning_rate_schedule=schedule,
        scale_lr=scale_lr,
        resume=resume,
        steps_per_epoch=steps_per_epoch,
        tensorboard_dir=tensorboard_dir,
    )
