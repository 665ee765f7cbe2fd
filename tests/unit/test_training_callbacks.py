"""Which user callbacks each rank runs (``occam.training.callbacks``): deciders everywhere, writers in rank 0."""

from __future__ import annotations

import pytest

from occam.errors import ConfigError
from occam.training.callbacks import check_callbacks, is_writer, rank_callbacks


class Callback:
    """Stands in for tf.keras.callbacks.Callback: what the split reads is the class name (and its bases)."""

    def set_model(self, model: object) -> None:
        self.model = model


class EarlyStopping(Callback):
    pass


class CSVLogger(Callback):
    pass


class MyCheckpoint(type("ModelCheckpoint", (Callback,), {})):  # a user's subclass of a writer
    pass


def test_writers_run_in_rank_0_only_and_deciders_everywhere():
    callbacks = [EarlyStopping(), CSVLogger(), MyCheckpoint()]
    assert [type(c).__name__ for c in rank_callbacks(callbacks, 0)] == ["EarlyStopping", "CSVLogger", "MyCheckpoint"]
    assert [type(c).__name__ for c in rank_callbacks(callbacks, 1)] == ["EarlyStopping"]
    assert is_writer(MyCheckpoint()) and not is_writer(EarlyStopping())


def test_a_function_is_called_in_each_rank_for_callbacks_that_do_not_pickle():
    made = []

    def callbacks():
        made.append(1)
        return [EarlyStopping()]

    assert len(rank_callbacks(callbacks, 0)) == 1 and len(rank_callbacks(callbacks, 3)) == 1
    assert len(made) == 2
    assert rank_callbacks(None, 0) == []


@pytest.mark.parametrize("bad", ["EarlyStopping", EarlyStopping(), [object()], 3])
def test_what_is_not_a_list_of_callbacks_is_refused_naming_the_fix(bad):
    with pytest.raises(ConfigError, match="callback"):
        check_callbacks(bad)
