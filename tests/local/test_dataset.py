"""Dataset conversion on the real cluster: every source, the content-keyed cache, readable by Petastorm."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
from pyspark.ml.linalg import Vectors
from pyspark.sql import functions as F

from occam import Dataset, DatasetError


def test_from_numpy_keeps_rows_shape_and_labels(cluster, digits, digits_train):
    x_train, y_train, _, _ = digits
    assert len(digits_train) == len(x_train)
    assert digits_train.schema == {"features": "float32[8, 8, 1]", "label": "int64"}
    assert digits_train.feature_shape == (8, 8, 1)
    x, y = digits_train.to_numpy()
    # The driver writes the rows in order: they come back exactly.
    np.testing.assert_array_equal(x, x_train)
    np.testing.assert_array_equal(y, y_train)


def test_written_as_enough_files_for_every_rank_to_have_a_shard(digits_train):
    assert len(digits_train.file_urls()) >= 16


def test_same_arrays_are_converted_once(cluster, digits, digits_train):
    x_train, y_train, _, _ = digits
    entries = set(os.listdir(os.path.dirname(digits_train.path)))
    started = time.perf_counter()
    again = Dataset.from_numpy(x_train.copy(), y_train.copy(), spark=cluster.spark)
    assert again.path == digits_train.path
    assert set(os.listdir(os.path.dirname(digits_train.path))) == entries
    assert time.perf_counter() - started < 5  # no Spark job: only hashing the arrays


def test_cache_is_reused_by_another_session(digits_train):
    """A new Python process (a new notebook session, no Spark at all) finds the converted data by content."""
    code = (
        "import json; from occam.examples.digits import load_digits; from occam import Dataset;"
        "x, y, _, _ = load_digits(); d = Dataset.from_numpy(x, y); print(json.dumps(d.path))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == digits_train.path


def test_changed_content_gets_a_new_conversion(cluster, digits, digits_train):
    x_train, y_train, _, _ = digits
    y_changed = y_train.copy()
    y_changed[0] = (y_changed[0] + 1) % 10
    changed = Dataset.from_numpy(x_train, y_changed, spark=cluster.spark)
    assert changed.key != digits_train.key


def test_from_dataframe_converts_doubles_and_vectors(cluster):
    rows = [(Vectors.dense([float(i), 1.0]), float(i) * 0.5, i % 2) for i in range(40)]
    df = cluster.spark.createDataFrame(rows, ["vec", "score", "label"])
    data = Dataset.from_dataframe(df, features="vec", label="label")
    assert data.schema == {"vec": "array<float>", "label": "bigint"}
    assert len(data) == 40
    scored = Dataset.from_dataframe(df, features="score", label="label")
    assert scored.schema["score"] == "float"


def test_from_dataframe_is_keyed_by_content_not_by_plan(cluster):
    a = cluster.spark.range(100).select((F.col("id") * 2.0).alias("features"), (F.col("id") % 3).alias("label"))
    b = cluster.spark.createDataFrame([(i * 2.0, i % 3) for i in reversed(range(100))], ["features", "label"])
    assert Dataset.from_dataframe(a).key == Dataset.from_dataframe(b).key


def test_from_parquet_and_hdf5(cluster, tmp_path, digits):
    x_train, y_train, _, _ = digits
    parquet = str(tmp_path / "digits.parquet")
    frame = cluster.spark.createDataFrame(
        [(x.flatten().tolist(), int(y)) for x, y in zip(x_train[:200], y_train[:200], strict=False)],
        ["pixels", "digit"],
    )
    frame.write.parquet(parquet)
    from_parquet = Dataset.from_parquet(parquet, features="pixels", label="digit", feature_shape=(8, 8, 1))
    assert len(from_parquet) == 200 and from_parquet.feature_shape == (8, 8, 1)

    h5 = str(tmp_path / "digits.h5")
    with h5py.File(h5, "w") as f:
        f["images"] = x_train[:300]
        f["labels"] = y_train[:300]
    from_h5 = Dataset.from_hdf5(h5, x="images", y="labels")
    assert len(from_h5) == 300 and from_h5.feature_shape == (8, 8, 1)
    with pytest.raises(DatasetError, match=r"has no dataset 'x'; it has \['images', 'labels'\]"):
        Dataset.from_hdf5(h5)


def test_unencodable_columns_are_refused_with_the_fix(cluster):
    df = cluster.spark.createDataFrame([({"a": 1}, 1)], ["features", "label"])
    with pytest.raises(DatasetError, match="'features' is a map"):
        Dataset.from_dataframe(df)
    with pytest.raises(DatasetError, match=r"\['target'\] not found"):
        Dataset.from_dataframe(df, label="target")


def test_bad_numpy_input_is_refused():
    with pytest.raises(DatasetError, match="x has 3 rows but y has 2"):
        Dataset.from_numpy(np.zeros((3, 2)), np.zeros(2))
    with pytest.raises(DatasetError, match="astype"):
        Dataset.from_numpy(np.array([["a"], ["b"]]), np.zeros(2))


def test_petastorm_reads_each_shard(digits_train):
    from petastorm import make_batch_reader

    seen = 0
    for shard in range(2):
        with make_batch_reader(digits_train.file_urls(), cur_shard=shard, shard_count=2, num_epochs=1) as reader:
            seen += sum(len(batch.label) for batch in reader)
    assert seen == len(digits_train)


def test_from_dataframe_with_a_label_column_per_output(cluster):
    df = cluster.spark.createDataFrame(
        [([float(i), float(i + 1)], i % 10, i % 2) for i in range(40)], ["features", "digit", "odd"]
    )
    named = Dataset.from_dataframe(df, label={"digit": "digit", "parity": "odd"})
    assert named.label is None and named.label_columns == ("digit", "odd")
    x, y = named.to_numpy()
    order = np.argsort(x[:, 0])  # Spark wrote the rows in its own order
    assert set(y) == {"digit", "parity"}
    assert y["digit"][order].tolist() == [i % 10 for i in range(40)]
    assert y["parity"][order].tolist() == [i % 2 for i in range(40)]
    listed = Dataset.from_dataframe(df, label=["digit", "odd"])
    assert isinstance(listed.to_numpy()[1], list) and listed.key != named.key
