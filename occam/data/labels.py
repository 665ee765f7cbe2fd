"""Labels of multi-output models: several label columns, given and returned as Keras takes ``y``.

Keras trains a model with several outputs on a dict of labels keyed by output name (``{"digit": y1,
"parity": y2}``, with losses and metrics keyed the same way) or on a list of label arrays matched to the
outputs by position. A :class:`~occam.Dataset` keeps one column per output (``label_0``, ``label_1``...
when the driver writes them) and the output names in its metadata, and hands the labels back in the form
they were given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from occam.errors import DatasetError


def several_labels(y: Any) -> list[tuple[str | None, Any]] | None:
    """The labels of several outputs, ``(output name or None, labels)`` each, when ``y`` is a dict of them or a
    list of arrays (Keras' conventions for multi-output models); None when ``y`` is one label array (a list of
    plain numbers is one label per row)."""
    if isinstance(y, Mapping):
        return [(name, values) for name, values in y.items()]
    if isinstance(y, list | tuple) and y and all(isinstance(v, np.ndarray) and v.ndim >= 1 for v in y):
        return [(None, values) for values in y]
    return None


def dataframe_labels(label: Any) -> tuple[str | None, list[tuple[str, str | None]]]:
    """``from_dataframe``'s ``label``: a single column, or ``(column, output name)`` for several outputs."""
    if label is None or isinstance(label, str):
        return label, []
    if isinstance(label, Mapping):
        pairs: list[tuple[str, str | None]] = [(column, name) for name, column in label.items()]
    elif isinstance(label, list | tuple):
        pairs = [(column, None) for column in label]
    else:
        raise DatasetError(f"label={label!r} must name a column, or be a dict (output name -> column) or a list")
    if not pairs or not all(isinstance(column, str) and column for column, _ in pairs):
        raise DatasetError(f"label={label!r}: give one column name per model output")
    return None, pairs


def label_name(name: str | None, index: int) -> str:
    return f"y[{name!r}]" if name is not None else f"y[{index}]"


def as_dtype(values: np.ndarray, dtype: str | None) -> np.ndarray:
    return values if dtype is None else values.astype(dtype, copy=False)


def keras_labels(outputs: Sequence[tuple[str, str | None, str | None]], values: list[Any], sequence: Any) -> Any:
    """``values`` (one per label column, in order) as Keras' ``fit`` takes ``y``: the one array when there are
    no ``outputs``, else a dict by output name, or a ``sequence`` (``list``; ``tuple`` inside tf.data) by position."""
    if not outputs:
        return values[0]
    names = [name for _, name, _ in outputs]
    if all(name is not None for name in names):
        return dict(zip(names, values, strict=True))
    return sequence(values)
