"""Arrays to Parquet on the driver, row group by row group: no pandas copy, no Spark job.

Each row's features are stored as one fixed-size binary value holding the row's raw little-endian bytes,
so every numeric dtype (uint8 images included) keeps its dtype and size on disk; the reader decodes them
(``tf.io.decode_raw`` in :mod:`occam.training.rank`, :func:`decode_features` for ``to_numpy``). Petastorm
0.13.1 reads fixed-size binary columns as bytes; it cannot read ``fixed_size_list`` columns or unsigned
integers wider than 8 bits at all, hence this layout. Labels are a plain column of a type Petastorm reads.

A conversion is written to a staging directory beside its cache entry and renamed into place only when
complete, so a conversion that fails or is killed midway never becomes a cache entry.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from occam.data.parquet import guarded_parquet, guarded_pyarrow
from occam.errors import DatasetError

if TYPE_CHECKING:
    import pyarrow as pa

#: Petastorm shards by row group, so even a small dataset is written as several files:
#: each Horovod rank needs at least one, and more give a better shuffle.
MIN_FILES = 16
#: Bytes of features per row group (one file each): bounds the driver's memory while converting.
TARGET_GROUP_BYTES = 32 * 1024 * 1024
METADATA_FILE = "_occam.json"
#: A staging directory untouched this long was left by a killed conversion: the next one removes it.
STALE_STAGING_SECONDS = 3600

#: How each label dtype is stored: Petastorm reads only these numeric Arrow types.
_LABEL_STORAGE = {
    "bool": "bool",
    "int8": "int8",
    "uint8": "uint8",
    "int16": "int16",
    "uint16": "int32",
    "int32": "int32",
    "uint32": "int64",
    "int64": "int64",
    "uint64": "int64",
    "float16": "float32",
    "float32": "float32",
    "float64": "float64",
}
FEATURE_DTYPES = tuple(_LABEL_STORAGE)


#: The column of the one label of a single-output dataset.
LABEL_COLUMN = "label"


def output_column(index: int) -> str:
    """The column of a multi-output dataset's ``index``-th label: a plain identifier whatever the output is
    called (Petastorm names batch fields by column), the output's name kept in the metadata."""
    return f"label_{index}"


@dataclass(frozen=True)
class ArrayLayout:
    """How arrays of one dtype and row shape are stored: what the reader needs to decode them.

    ``label_dtype`` is the dtype of a single label column; a multi-output dataset has ``outputs`` instead,
    one ``(column, output name or None, dtype)`` per label column (names for a dict of labels, None for a
    list, matched to the model's outputs by position), and ``label_dtype`` None.
    """

    feature_dtype: str
    feature_shape: tuple[int, ...]
    label_dtype: str | None
    outputs: tuple[tuple[str, str | None, str], ...] = ()

    @property
    def row_bytes(self) -> int:
        return int(np.dtype(self.feature_dtype).itemsize * math.prod(self.feature_shape))

    @property
    def label_storage(self) -> str | None:
        return None if self.label_dtype is None else _LABEL_STORAGE[self.label_dtype]

    def label_columns(self) -> list[tuple[str, str]]:
        """Every label column and the dtype its labels were given in."""
        if self.outputs:
            return [(column, dtype) for column, _, dtype in self.outputs]
        return [] if self.label_dtype is None else [(LABEL_COLUMN, self.label_dtype)]

    def columns(self) -> dict[str, str]:
        """Column name to what it holds, for ``Dataset.schema``."""
        shape = ", ".join(str(d) for d in self.feature_shape)
        described = {"features": f"{self.feature_dtype}[{shape}]"}
        for column, dtype in self.label_columns():
            described[column] = _LABEL_STORAGE[dtype]
        return described

    def key_options(self) -> dict[str, Any]:
        """What decides the stored form besides the data itself: part of every cache key."""
        options: dict[str, Any] = {
            "dtype": self.feature_dtype,
            "shape": list(self.feature_shape),
            "label": self.label_dtype,
        }
        if self.outputs:
            options["outputs"] = [list(output) for output in self.outputs]
        return options

    def metadata(self) -> dict[str, Any]:
        """The dataset metadata (``_occam.json``) that describes arrays written in this layout."""
        return {
            "features": "features",
            "label": LABEL_COLUMN if self.label_dtype is not None else None,
            "feature_shape": list(self.feature_shape),
            "columns": self.columns(),
            "feature_dtype": self.feature_dtype,
            "label_dtype": self.label_dtype,
            "outputs": [list(output) for output in self.outputs],
        }


def _dtype_problem(what: str, dtype: np.dtype[Any]) -> str | None:
    if dtype.name in FEATURE_DTYPES:
        return None
    if dtype.kind in "OUSV":
        hint = (
            "ragged or mixed rows (lists of different lengths) or strings: pad or crop every row to one shape "
            "and encode text as numbers, then pass a numeric array (e.g. np.stack(rows).astype('float32'))"
        )
    else:
        hint = "convert it to a supported dtype (e.g. .astype('float32'))"
    return f"{what} has dtype {dtype}, which cannot be stored: {hint}. Supported: {', '.join(FEATURE_DTYPES)}"


def plan_layout(
    x_dtype: np.dtype[Any], x_shape: tuple[int, ...], y_dtype: np.dtype[Any] | None, y_shape: tuple[int, ...] | None
) -> ArrayLayout:
    """Check arrays by dtype and shape alone (no data read) and say how they are stored.

    Raises :class:`DatasetError` naming the fix for empty, ragged, non-numeric or mismatched arrays.
    """
    problem = _dtype_problem("x", x_dtype)
    if problem:
        raise DatasetError(problem)
    if len(x_shape) < 1:
        raise DatasetError("x is a single value, not rows: pass an array shaped (rows, ...)")
    if x_shape[0] == 0:
        raise DatasetError(f"x is empty (shape {x_shape}): pass at least one row, shaped (rows, ...)")
    if 0 in x_shape[1:]:
        raise DatasetError(f"x has rows of no values (shape {x_shape}): each row needs at least one value")
    if y_dtype is not None and y_shape is not None:
        _check_labels("y", y_dtype, y_shape, x_shape[0])
    return ArrayLayout(
        feature_dtype=x_dtype.name,
        feature_shape=tuple(int(d) for d in x_shape[1:]),
        label_dtype=None if y_dtype is None else y_dtype.name,
    )


#: Why a dict or list of feature arrays is refused.
SEVERAL_INPUTS = (
    "x must be one array: models with several inputs are not supported yet. Give the model one input (for "
    "example concatenate the inputs' values per row, then split them with Lambda layers inside the model)"
)


def _check_labels(what: str, dtype: np.dtype[Any], shape: tuple[int, ...], rows: int) -> None:
    problem = _dtype_problem(what, dtype)
    if problem:
        raise DatasetError(problem)
    if len(shape) != 1:
        raise DatasetError(
            f"{what} must be one label per row (shape (rows,)), got shape {shape}: "
            "for one-hot labels pass their argmax (y.argmax(axis=1))"
        )
    if shape[0] != rows:
        raise DatasetError(f"x has {rows} rows but {what} has {shape[0]}: they must match")


def plan_outputs(
    layout: ArrayLayout, rows: int, labels: list[tuple[str | None, np.dtype[Any], tuple[int, ...]]]
) -> ArrayLayout:
    """``layout`` (planned without labels) with one label column per model output: ``labels`` holds each
    output's name (None: matched by position), dtype and shape, in order. Checked as a single label is."""
    if not labels:
        raise DatasetError("y is an empty dict or list: give one label array per model output")
    names = [name for name, _, _ in labels]
    if any(name is not None and (not isinstance(name, str) or not name) for name in names):
        raise DatasetError(f"the keys of y must be the model's output names (non-empty strings), got {names}")
    outputs = []
    for index, (name, dtype, shape) in enumerate(labels):
        what = f"y[{name!r}]" if name is not None else f"y[{index}]"
        _check_labels(what, dtype, shape, rows)
        outputs.append((output_column(index), name, dtype.name))
    return ArrayLayout(layout.feature_dtype, layout.feature_shape, None, tuple(outputs))


def as_array(name: str, data: Any) -> np.ndarray:
    try:
        return np.asarray(data)
    except ValueError as exc:  # numpy >= 1.24 refuses ragged nested lists outright
        raise DatasetError(
            f"{name} is ragged (rows of different shapes): pad or crop every row to one shape, then pass "
            f"one numeric array ({exc})"
        ) from None


def hdf5_dataset(f: Any, path: str, name: str) -> Any:
    import h5py

    found = f.get(name)
    if not isinstance(found, h5py.Dataset):
        names = []
        f.visititems(lambda item, obj: names.append(item) if isinstance(obj, h5py.Dataset) else None)
        raise DatasetError(f"{path} has no dataset {name!r}; it has {names}. Pass x=... and y=... naming them")
    return found


def rows_per_group(num_rows: int, row_bytes: int) -> int:
    """Rows per row group: at least :data:`MIN_FILES` groups, none much over :data:`TARGET_GROUP_BYTES`."""
    by_count = math.ceil(num_rows / MIN_FILES)
    by_size = max(1, TARGET_GROUP_BYTES // max(1, row_bytes))
    return max(1, min(by_count, by_size))


def encode(layout: ArrayLayout, x: np.ndarray, y: np.ndarray | dict[str, np.ndarray] | None) -> pa.Table:
    """One row group: ``x``'s rows as fixed-size binary (zero-copy when ``x`` is contiguous little-endian)."""
    pa = guarded_pyarrow()

    raw = np.ascontiguousarray(x, dtype=np.dtype(layout.feature_dtype).newbyteorder("<"))
    features = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(layout.row_bytes), len(raw), [None, pa.py_buffer(raw.reshape(-1).view(np.uint8))]
    )
    columns: dict[str, Any] = {"features": features}
    if y is not None:
        # One array for a single label column, a dict by column for several.
        given = y if isinstance(y, dict) else {LABEL_COLUMN: y}
        for column, dtype in layout.label_columns():
            labels = np.asarray(given[column])
            if dtype == "uint64" and len(labels) and labels.max() > np.iinfo(np.int64).max:
                raise DatasetError("y has uint64 labels above 2**63 - 1: map them to smaller class numbers first")
            columns[column] = pa.array(labels.astype(_LABEL_STORAGE[dtype], copy=False))
    return pa.table(columns)


def decode_features(column: Any, layout: ArrayLayout) -> np.ndarray:
    """The rows of a fixed-size binary (or binary) Arrow column as an array of ``layout``'s dtype and shape."""
    pa = guarded_pyarrow()

    dtype = np.dtype(layout.feature_dtype).newbyteorder("<")
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_fixed_size_binary(column.type):
        width = column.type.byte_width
        data = np.frombuffer(column.buffers()[1], dtype=np.uint8)[
            column.offset * width : (column.offset + len(column)) * width
        ]
    else:  # variable-length binary, as Spark writes it back
        data = np.frombuffer(b"".join(column.to_pylist()), dtype=np.uint8)
    values = data.view(dtype).astype(np.dtype(layout.feature_dtype), copy=False)
    return values.reshape((len(column), *layout.feature_shape))


class StagedWrite:
    """Parquet files written into a staging directory beside ``final``, renamed to ``final`` on :meth:`commit`.

    Used as a context manager: leaving it without committing (an exception, a kill) removes the staging
    directory, so a half-written conversion never becomes a cache entry.
    """

    def __init__(self, final: str) -> None:
        self.final = final
        root = os.path.dirname(final)
        os.makedirs(root, exist_ok=True)
        _remove_stale_staging(root, os.path.basename(final))
        self.staging = os.path.join(root, f".{os.path.basename(final)}.{uuid.uuid4().hex[:8]}.tmp")
        os.makedirs(self.staging)
        self.files = 0
        self.rows = 0

    def __enter__(self) -> StagedWrite:
        return self

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)

    def write(self, table: pa.Table) -> None:
        """One row group, in a file of its own (Petastorm hands whole row groups to ranks)."""
        pa = guarded_pyarrow()
        pq = guarded_parquet()

        if table.num_rows == 0:
            return
        path = os.path.join(self.staging, f"part-{self.files:05d}.parquet")
        # Dictionaries and min/max statistics of whole images only cost space and time: labels keep theirs.
        small = [
            name for name in table.column_names if not pa.types.is_fixed_size_binary(table.schema.field(name).type)
        ]
        pq.write_table(table, path, row_group_size=table.num_rows, use_dictionary=small, write_statistics=small)
        self.files += 1
        self.rows += table.num_rows

    def commit(self, metadata: dict[str, Any]) -> None:
        """Write the metadata and move the files into place; if another session got there first, keep theirs."""
        if self.rows == 0:
            raise DatasetError("the data has no rows: nothing to train on")
        with open(os.path.join(self.staging, METADATA_FILE), "w") as fh:
            json.dump({**metadata, "num_rows": self.rows}, fh)
        # When the same content was converted meanwhile the rename fails: keep theirs, __exit__ removes ours.
        with contextlib.suppress(OSError):
            os.rename(self.staging, self.final)


def _remove_stale_staging(root: str, key: str) -> None:
    """Remove what killed conversions of ``key`` left behind (not a running one: those are fresh)."""
    now = time.time()
    for entry in os.scandir(root):
        if entry.name.startswith(f".{key}.") and entry.name.endswith(".tmp"):
            with contextlib.suppress(OSError):
                if now - entry.stat().st_mtime > STALE_STAGING_SECONDS:
                    shutil.rmtree(entry.path, ignore_errors=True)


#: A row group's features and labels: one label array, a dict of them by column (several outputs), or None.
Slice = tuple[np.ndarray, np.ndarray | dict[str, np.ndarray] | None]


def write_arrays(final: str, layout: ArrayLayout, slices: Iterator[Slice], metadata: dict[str, Any]) -> None:
    """Write row groups (each ``(x, y)`` slice one group) as the cache entry ``final``."""
    with StagedWrite(final) as staged:
        for x, y in slices:
            staged.write(encode(layout, x, y))
        staged.commit(metadata)


def array_slices(x: Any, y: Any, num_rows: int, group_rows: int) -> Iterator[Slice]:
    """``(x[i:j], y[i:j])`` for consecutive groups; works for numpy arrays and h5py datasets (read per slice).
    ``y`` may be a dict of label arrays by column (several outputs): each is sliced alike."""
    for start in range(0, num_rows, group_rows):
        stop = min(num_rows, start + group_rows)
        labels: np.ndarray | dict[str, np.ndarray] | None = None
        if isinstance(y, dict):
            labels = {column: np.asarray(values[start:stop]) for column, values in y.items()}
        elif y is not None:
            labels = np.asarray(y[start:stop])
        yield np.asarray(x[start:stop]), labels
