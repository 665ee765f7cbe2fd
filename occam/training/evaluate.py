"""``Cluster.evaluate`` and ``Cluster.predict``: a trained model applied to a Dataset on the executors, in parallel.

The model travels once to every executor (a Spark broadcast of its ``.keras`` file); each Spark task reads a
slice of the dataset's Parquet files with pyarrow (the executors see them, as for ``fit``), and applies the
model there. ``predict`` keeps the dataset's row order (files in order, rows in order within a file);
``predict(..., output="dataframe")`` writes the predictions as Parquet on the executors instead
(:mod:`occam.training.predictions`); ``evaluate`` combines each task's metrics weighted by its rows, which is exact for the means Keras reports
(loss, accuracy, MAE...) and an approximation for metrics that are not means over samples (AUC, precision).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from occam.backends import unshared_path_problem
from occam.contract import tensorflow_environment
from occam.data.dataset import Dataset, cache_root
from occam.errors import ConfigError
from occam.training import predictions

if TYPE_CHECKING:
    from occam.training.fit import Cluster


def keras_model(model: Any, custom_objects: Mapping[str, Any] | None = None) -> Any:
    """The Keras model that ``model`` names: a ``FitResult``'s, a Keras model, or a saved model file's path."""
    import tensorflow as tf

    if hasattr(model, "model") and hasattr(model, "history"):  # a FitResult
        model = model.model
    if isinstance(model, str | os.PathLike):
        if not os.path.exists(model):
            raise ConfigError(f"no saved model at {model}: pass a path written by model.save(...), or the model")
        model = tf.keras.models.load_model(model, custom_objects=dict(custom_objects or {}))
    if not isinstance(model, tf.keras.Model):
        raise ConfigError(
            f"model must be a fit's result, a Keras model or the path of a saved one, not {type(model).__name__}"
        )
    return model


def _model_bytes(model: Any) -> bytes:
    with tempfile.TemporaryDirectory(prefix="occam-model-") as folder:
        path = os.path.join(folder, "model.keras")
        model.save(path)
        with open(path, "rb") as fh:
            return fh.read()


def _slices(urls: list[str], parts: int) -> list[list[str]]:
    """``urls`` in ``parts`` contiguous runs (so that concatenating the runs' rows keeps the dataset's order)."""
    size = -(-len(urls) // parts)
    return [urls[i : i + size] for i in range(0, len(urls), size)]


def _check_dataset(dataset: Any) -> None:
    if not isinstance(dataset, Dataset):
        raise ConfigError(
            f"dataset must be an occam.Dataset, not {type(dataset).__name__}; build one with Dataset.from_numpy, "
            "from_hdf5, from_parquet or from_images"
        )


def _run(
    cluster: Cluster,
    model: Any,
    dataset: Dataset,
    custom_objects: Mapping[str, Any] | None,
    task: Any,
) -> list[Any]:
    problem = unshared_path_problem(cluster.spark, dataset.path, writer="the dataset is read")
    if problem:
        raise ConfigError(problem)
    keras = keras_model(model, custom_objects)
    urls = dataset.file_urls()
    shipped = cluster.sc.broadcast(_model_bytes(keras))
    objects = dict(custom_objects or {})
    threads = tensorflow_environment(cluster.spec.cores)

    def apply(index: int, parts: Any) -> Any:
        os.environ.update(threads)
        import tensorflow as tf

        with tempfile.TemporaryDirectory(prefix="occam-model-") as folder:
            path = os.path.join(folder, "model.keras")
            with open(path, "wb") as fh:
                fh.write(shipped.value)
            loaded = tf.keras.models.load_model(path, custom_objects=objects)
        for files in parts:
            yield index, task(loaded, files)

    try:
        rdd = cluster.sc.parallelize(_slices(urls, max(1, min(len(urls), cluster.n))), max(1, cluster.n))
        results = sorted(rdd.mapPartitionsWithIndex(apply).collect(), key=lambda pair: pair[0])
    finally:
        shipped.destroy()
    return [result for _, result in results]


def evaluate(
    cluster: Cluster,
    model: Any,
    dataset: Dataset,
    *,
    batch_size: int = 32,
    custom_objects: Mapping[str, Any] | None = None,
) -> dict[str, float]:
    """What ``Cluster.evaluate`` does: the model's loss and metrics on ``dataset``, computed on the executors."""
    _check_dataset(dataset)
    if not dataset.labelled:
        raise ConfigError("evaluate needs labels: the dataset has no label column (use predict)")

    def task(loaded: Any, files: list[str]) -> tuple[int, dict[str, float]]:
        x, y = dataset.read_files(files)
        scores = loaded.evaluate(x, y, batch_size=batch_size, verbose=0, return_dict=True)
        return len(x), {k: float(v) for k, v in scores.items()}

    parts = _run(cluster, model, dataset, custom_objects, task)
    total = sum(count for count, _ in parts)
    names = parts[0][1].keys()
    return {name: sum(count * scores[name] for count, scores in parts) / total for name in names}


def predict(
    cluster: Cluster,
    model: Any,
    dataset: Dataset,
    *,
    batch_size: int = 32,
    custom_objects: Mapping[str, Any] | None = None,
    output: str = "numpy",
    path: str | os.PathLike[str] | None = None,
) -> Any:
    """What ``Cluster.predict`` does: the model's outputs for every row of ``dataset``, in the dataset's order."""
    _check_dataset(dataset)
    predictions.check_output(output)
    if output == "dataframe":
        return _predict_to_parquet(cluster, model, dataset, batch_size, custom_objects, path)
    if path is not None:
        raise ConfigError("path= is where output='dataframe' writes its Parquet files: pass both, or neither")

    def task(loaded: Any, files: list[str]) -> Any:
        x, _ = dataset.read_files(files)
        return loaded.predict(x, batch_size=batch_size, verbose=0)

    return concatenate_outputs(_run(cluster, model, dataset, custom_objects, task))


def _predict_to_parquet(
    cluster: Cluster,
    model: Any,
    dataset: Dataset,
    batch_size: int,
    custom_objects: Mapping[str, Any] | None,
    path: str | os.PathLike[str] | None,
) -> Any:
    """The executors write each dataset file's predictions as Parquet (one file in memory at a time); the
    result is a Spark DataFrame of them in the dataset's order."""
    folder = predictions.prediction_folder(path, cache_root())
    problem = unshared_path_problem(cluster.spark, folder, writer="the executors write predictions")
    if problem:
        raise ConfigError(problem)
    urls = dataset.file_urls()
    first_rows = predictions.first_rows(urls)
    numbers = {url: i for i, url in enumerate(urls)}

    def task(loaded: Any, files: list[str]) -> int:
        for url in files:  # a file at a time: an executor never holds more than one file's rows
            x, _ = dataset.read_files([url])
            outputs = loaded.predict(x, batch_size=batch_size, verbose=0)
            predictions.write_part(folder, numbers[url], predictions.prediction_table(first_rows[url], outputs))
        return len(files)

    written = sum(_run(cluster, model, dataset, custom_objects, task))
    if written != len(urls):  # pragma: no cover - a task returned without writing its files
        raise ConfigError(f"only {written} of the dataset's {len(urls)} files got predictions in {folder}")
    return cluster.spark.read.parquet("file://" + folder).orderBy(predictions.ROW_COLUMN)


def concatenate_outputs(parts: list[Any]) -> Any:
    """The parts' predictions end to end, in the structure Keras' ``predict`` gives: one array, or for a model
    with several outputs a list (by position) or a dict (by output name) of arrays."""
    first = parts[0]
    if isinstance(first, dict):
        return {name: np.concatenate([part[name] for part in parts]) for name in first}
    if isinstance(first, list | tuple):
        return [np.concatenate([part[i] for part in parts]) for i in range(len(first))]
    return np.concatenate([np.asarray(part) for part in parts])
