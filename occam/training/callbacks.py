"""Keras callbacks in a data-parallel fit: which run in every rank and which in rank 0 only.

Every rank runs the same epochs on averaged metrics (Horovod's ``MetricAverageCallback`` comes first), so a
callback that decides (stop early, lower the learning rate, stop on NaN) decides the same in every rank and
the ranks stay in step. A callback that writes files would write them once per rank: those run in rank 0 only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from occam.errors import ConfigError

#: Keras callbacks that write files or logs: rank 0 only.
WRITER_NAMES = frozenset({"ModelCheckpoint", "CSVLogger", "TensorBoard", "BackupAndRestore", "ProgbarLogger"})


def check_callbacks(callbacks: Sequence[Any] | Callable[[], Sequence[Any]] | None) -> None:
    """Refuse, before anything starts, what cannot be a list of callbacks (or a function returning one)."""
    if callbacks is None or callable(callbacks):
        return
    if isinstance(callbacks, str | bytes) or not isinstance(callbacks, Sequence):
        raise ConfigError(
            f"callbacks must be a list of Keras callbacks, or a function returning one, not {type(callbacks).__name__}"
        )
    for callback in callbacks:
        if not hasattr(callback, "set_model"):
            raise ConfigError(
                f"callbacks: {callback!r} is not a Keras callback (tf.keras.callbacks.Callback); "
                "pass instances such as tf.keras.callbacks.EarlyStopping(patience=3)"
            )


def is_writer(callback: Any) -> bool:
    """Whether ``callback`` writes files (by its Keras class, or one it derives from)."""
    return any(cls.__name__ in WRITER_NAMES for cls in type(callback).__mro__)


def rank_callbacks(callbacks: Sequence[Any] | Callable[[], Sequence[Any]] | None, rank: int) -> list[Any]:
    """The user's callbacks this rank runs: every deciding one, and the writers in rank 0 only."""
    if callbacks is None:
        return []
    made = list(callbacks() if callable(callbacks) else callbacks)
    check_callbacks(made)
    return [c for c in made if rank == 0 or not is_writer(c)]
