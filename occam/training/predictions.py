"""Predictions written as Parquet by the executors, for ``Cluster.predict(..., output="dataframe")``.

For data larger than the notebook's memory the predictions never come back through the driver: each Spark
task applies the model to one dataset file at a time and writes that file's predictions next to the others
(``part-<file number>.parquet``), each row with its position in the dataset (``row``). The notebook gets a
Spark DataFrame of them ordered by ``row``, which is the dataset's order.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from typing import TYPE_CHECKING, Any

import numpy as np

from occam.data.parquet import guarded_parquet, guarded_pyarrow
from occam.errors import ConfigError

if TYPE_CHECKING:
    import pyarrow as pa

#: The column holding each prediction's row number in the dataset.
ROW_COLUMN = "row"
#: The column of a single-output model's predictions.
PREDICTION_COLUMN = "prediction"
#: What ``predict``'s ``output=`` takes.
OUTPUTS = ("numpy", "dataframe")


def check_output(output: object) -> None:
    if output not in OUTPUTS:
        raise ConfigError(
            f"output={output!r}: use 'numpy' (an array in this notebook's memory) or 'dataframe' (Parquet "
            "files the executors write, as a Spark DataFrame: for predictions larger than this notebook's memory)"
        )


def prediction_folder(path: str | os.PathLike[str] | None, cache: str) -> str:
    """Where the executors write: ``path``, which must be new or empty, or a new folder under ``cache``."""
    if path is None:
        return os.path.join(cache, "predictions", uuid.uuid4().hex)
    folder = os.path.abspath(os.path.expanduser(os.fspath(path)))
    if os.path.exists(folder) and (not os.path.isdir(folder) or os.listdir(folder)):
        raise ConfigError(
            f"predictions go to {folder}, which already holds files: name a new or empty folder (path=...), "
            "or remove the old predictions"
        )
    return folder


def first_rows(urls: list[str]) -> dict[str, int]:
    """Each file's first row in the dataset (files in order), from the Parquet footers only."""
    pq = guarded_parquet()

    offsets, start = {}, 0
    for url in urls:
        offsets[url] = start
        start += pq.ParquetFile(url.removeprefix("file://")).metadata.num_rows
    return offsets


def _column(values: Any) -> pa.Array:
    """One output's predictions as an Arrow column: a number per row, or a list of numbers per row."""
    pa = guarded_pyarrow()

    array = np.asarray(values)
    if array.ndim == 1:
        return pa.array(array)
    flat = np.ascontiguousarray(array.reshape(len(array), -1))
    offsets = np.arange(0, flat.size + 1, flat.shape[1], dtype=np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat.reshape(-1)))


def prediction_table(first_row: int, outputs: Any) -> pa.Table:
    """``outputs`` (what Keras' ``predict`` returned for rows from ``first_row`` on) as a table: ``row``, then
    ``prediction``, or one column per output (named as the model's outputs; ``output_<i>`` for a list)."""
    pa = guarded_pyarrow()

    if isinstance(outputs, dict):
        named = dict(outputs)
    elif isinstance(outputs, list | tuple):
        named = {f"output_{i}": values for i, values in enumerate(outputs)}
    else:
        named = {PREDICTION_COLUMN: outputs}
    rows = len(next(iter(named.values())))
    columns = {ROW_COLUMN: pa.array(np.arange(first_row, first_row + rows, dtype=np.int64))}
    columns.update({name: _column(values) for name, values in named.items()})
    return pa.table(columns)


def write_part(folder: str, number: int, table: pa.Table) -> None:
    """``table`` as ``folder/part-<number>.parquet``, written under a hidden name first (Spark skips names
    starting with a dot), so that a task that dies midway leaves no half file among the predictions."""
    pq = guarded_parquet()

    os.makedirs(folder, exist_ok=True)
    final = os.path.join(folder, f"part-{number:05d}.parquet")
    staging = os.path.join(folder, f".part-{number:05d}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        pq.write_table(table, staging)
        os.replace(staging, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(staging)
