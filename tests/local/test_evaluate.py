"""cluster.evaluate and cluster.predict on real executors: the same numbers as single-process Keras."""

from __future__ import annotations

import numpy as np
import pytest

from occam import ConfigError, Dataset
from occam.examples.digits import build_cnn


@pytest.fixture(scope="module")
def held_out(cluster, digits):
    _, _, x_test, y_test = digits
    return x_test, y_test, Dataset.from_numpy(x_test, y_test, spark=cluster.spark)


@pytest.fixture(scope="module")
def model():
    import tensorflow as tf

    tf.keras.utils.set_random_seed(3)
    return build_cnn()


def test_evaluate_on_the_executors_equals_keras_in_one_process(cluster, held_out, model):
    x_test, y_test, data = held_out
    assert len(data.file_urls()) >= 2, "the rows must be spread over several tasks for this to mean anything"
    expected = model.evaluate(x_test, y_test, batch_size=32, verbose=0, return_dict=True)
    got = cluster.evaluate(model, data, batch_size=32)
    assert set(got) == set(expected)
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, rel=1e-4, abs=1e-5), name


def test_predict_keeps_the_dataset_order(cluster, held_out, model, tmp_path):
    x_test, _, data = held_out
    expected = model.predict(x_test, batch_size=64, verbose=0)
    got = cluster.predict(model, data)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    # The same from a saved model file.
    path = tmp_path / "digits.keras"
    model.save(path)
    np.testing.assert_allclose(cluster.predict(str(path), data), expected, rtol=1e-4, atol=1e-5)


def test_bad_models_and_datasets_are_refused_before_any_job(cluster, held_out, model, tmp_path):
    _, _, data = held_out
    with pytest.raises(ConfigError, match="no saved model at"):
        cluster.evaluate(str(tmp_path / "missing.keras"), data)
    with pytest.raises(ConfigError, match="must be a fit's result, a Keras model"):
        cluster.predict(object(), data)
    with pytest.raises(ConfigError, match="must be an occam.Dataset"):
        cluster.evaluate(model, "data.parquet")


def test_predict_into_a_dataframe_writes_parquet_on_the_executors_in_dataset_order(cluster, held_out, model, tmp_path):
    x_test, _, data = held_out
    expected = model.predict(x_test, batch_size=64, verbose=0)
    folder = tmp_path / "predictions"
    frame = cluster.predict(model, data, output="dataframe", path=str(folder))
    assert frame.columns == ["row", "prediction"]
    rows = frame.collect()
    assert [r["row"] for r in rows] == list(range(len(x_test)))
    np.testing.assert_allclose(np.array([r["prediction"] for r in rows]), expected, rtol=1e-4, atol=1e-5)
    # One Parquet file per dataset file, written by the executors: nothing went through the driver's memory.
    assert len(list(folder.glob("part-*.parquet"))) == len(data.file_urls())
    assert not list(folder.glob(".*"))
    with pytest.raises(ConfigError, match="already holds files"):
        cluster.predict(model, data, output="dataframe", path=str(folder))
    with pytest.raises(ConfigError, match="output='table'"):
        cluster.predict(model, data, output="table")
