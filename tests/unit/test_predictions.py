"""The Parquet tables ``predict(..., output="dataframe")``'s executors write: rows numbered in dataset order,
one column per output, written under a hidden name first. No Spark (the local tier runs the real thing)."""

import numpy as np
import pytest

pq = pytest.importorskip("pyarrow.parquet", reason="the predictions are written with pyarrow")

from occam.errors import ConfigError  # noqa: E402
from occam.training import predictions  # noqa: E402


def test_one_output_gives_row_and_prediction_columns(tmp_path):
    table = predictions.prediction_table(10, np.arange(6, dtype=np.float32).reshape(3, 2))
    assert table.column_names == ["row", "prediction"]
    assert table.column("row").to_pylist() == [10, 11, 12]
    assert table.column("prediction").to_pylist() == [[0, 1], [2, 3], [4, 5]]
    predictions.write_part(str(tmp_path), 7, table)
    assert [p.name for p in tmp_path.iterdir()] == ["part-00007.parquet"]
    assert pq.read_table(tmp_path / "part-00007.parquet").equals(table)


def test_several_outputs_give_a_column_each():
    named = predictions.prediction_table(0, {"digit": np.zeros((2, 10)), "parity": np.ones(2)})
    assert named.column_names == ["row", "digit", "parity"]
    listed = predictions.prediction_table(0, [np.zeros((2, 3)), np.ones((2, 1))])
    assert listed.column_names == ["row", "output_0", "output_1"]


def test_the_output_folder_must_be_new_or_empty(tmp_path):
    assert predictions.prediction_folder(None, str(tmp_path)).startswith(str(tmp_path / "predictions"))
    assert predictions.prediction_folder(tmp_path / "new", "unused") == str(tmp_path / "new")
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "part-00000.parquet").write_bytes(b"")
    with pytest.raises(ConfigError, match="already holds files"):
        predictions.prediction_folder(tmp_path / "old", "unused")
    with pytest.raises(ConfigError, match="'numpy'.*'dataframe'"):
        predictions.check_output("pandas")
