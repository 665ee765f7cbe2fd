"""A model with two outputs (digit and parity) on the real embedded cluster: fit, evaluate and predict take a
Dataset with one label column per output, as Keras takes a dict (or list) of labels, and agree with Keras in
one process."""

from __future__ import annotations

import sys

import cloudpickle
import numpy as np
import pytest

from occam import Dataset

# Executors import nothing from tests/: send this module's functions by value, as a notebook's are.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def build_two_heads():
    """One trunk, a 10-way ``digit`` head and a binary ``parity`` head, losses and metrics keyed by output name."""
    import tensorflow as tf

    inputs = tf.keras.Input(shape=(8, 8, 1))
    trunk = tf.keras.layers.Dense(64, activation="relu")(tf.keras.layers.Flatten()(inputs))
    digit = tf.keras.layers.Dense(10, activation="softmax", name="digit")(trunk)
    parity = tf.keras.layers.Dense(1, activation="sigmoid", name="parity")(trunk)
    model = tf.keras.Model(inputs, {"digit": digit, "parity": parity})
    model.compile(
        optimizer=tf.keras.optimizers.Adam(0.005),
        loss={"digit": "sparse_categorical_crossentropy", "parity": "binary_crossentropy"},
        loss_weights={"digit": 1.0, "parity": 0.5},
        metrics={"digit": ["accuracy"], "parity": ["accuracy"]},
    )
    return model


def two_labels(y: np.ndarray) -> dict[str, np.ndarray]:
    return {"digit": y, "parity": (y % 2).astype(np.float32)}


@pytest.fixture(scope="module")
def data(cluster, digits):
    x_train, y_train, x_test, y_test = digits
    train = Dataset.from_numpy(x_train, two_labels(y_train), spark=cluster.spark)
    test = Dataset.from_numpy(x_test, two_labels(y_test), spark=cluster.spark)
    return train, test, x_test, two_labels(y_test)


@pytest.fixture(scope="module")
def trained(cluster, data, tmp_path_factory):
    train, test, _, _ = data
    return cluster.fit(
        build_two_heads,
        train,
        validation=test,
        epochs=4,
        batch_size=32,
        checkpoint_dir=str(tmp_path_factory.mktemp("two-heads")),
        progress=False,
    )


def test_fit_trains_both_heads_and_reports_what_keras_reports(trained, data):
    import tensorflow as tf

    _, _, x_test, y_test = data
    # Keras in one process, one epoch on the same arrays: the metric names fit reports must be the same.
    local = build_two_heads().fit(x_test, y_test, validation_data=(x_test, y_test), epochs=1, verbose=0)
    assert set(trained.history) == set(local.history)
    assert {"digit_accuracy", "parity_accuracy", "val_digit_loss", "val_parity_loss"} <= set(trained.history)
    assert trained.history["val_digit_accuracy"][-1] > 0.8
    assert trained.history["val_parity_accuracy"][-1] > 0.8
    assert isinstance(trained.model, tf.keras.Model) and trained.model.output_names == ["digit", "parity"]


def test_evaluate_and_predict_on_the_executors_equal_keras_in_one_process(cluster, trained, data):
    _, test, x_test, y_test = data
    model = trained.model
    expected = model.evaluate(x_test, y_test, batch_size=32, verbose=0, return_dict=True)
    got = cluster.evaluate(trained, test, batch_size=32)
    assert set(got) == set(expected)
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, rel=1e-4, abs=1e-5), name
    predicted = cluster.predict(trained, test)
    wanted = model.predict(x_test, verbose=0)
    assert set(predicted) == {"digit", "parity"}
    for name in ("digit", "parity"):
        np.testing.assert_allclose(predicted[name], wanted[name], rtol=1e-4, atol=1e-5)
    # The same as Parquet written by the executors: a column per output, in the dataset's order.
    rows = cluster.predict(trained, test, output="dataframe").collect()
    assert list(rows[0].asDict()) == ["row", "digit", "parity"]
    np.testing.assert_allclose(np.array([r["digit"] for r in rows]), wanted["digit"], rtol=1e-4, atol=1e-5)


def test_a_list_of_labels_goes_to_the_outputs_by_position(cluster, digits):
    import tensorflow as tf

    _, _, x_test, y_test = digits
    inputs = tf.keras.Input(shape=(8, 8, 1))
    flat = tf.keras.layers.Flatten()(inputs)
    model = tf.keras.Model(inputs, [tf.keras.layers.Dense(10)(flat), tf.keras.layers.Dense(1)(flat)])
    model.compile(loss=[tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True), "mse"], optimizer="sgd")
    labels = [y_test, (y_test % 2).astype(np.float32)]
    data = Dataset.from_numpy(x_test, labels, spark=cluster.spark)
    assert data.to_numpy()[1][0].tolist() == y_test.tolist()
    expected = model.evaluate(x_test, labels, batch_size=32, verbose=0, return_dict=True)
    got = cluster.evaluate(model, data, batch_size=32)
    assert got == pytest.approx(expected, rel=1e-4, abs=1e-5)
    predicted = cluster.predict(model, data)
    assert isinstance(predicted, list) and len(predicted) == 2
    for got_output, wanted in zip(predicted, model.predict(x_test, verbose=0), strict=True):
        np.testing.assert_allclose(got_output, wanted, rtol=1e-4, atol=1e-5)
