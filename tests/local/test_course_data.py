"""Course data on the real cluster: uint8 images written by the driver train through Petastorm and Horovod,
cast for the model by each rank's reader; split and from_images datasets feed fit the same way."""

from __future__ import annotations

import sys

import cloudpickle
import numpy as np
import pytest

from occam import Dataset

# Executors import nothing from tests/: send this module's functions by value, as a notebook's are.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def build_rescaling_cnn():
    import tensorflow as tf

    model = tf.keras.Sequential(
        [
            tf.keras.layers.Input(shape=(32, 32, 3)),
            tf.keras.layers.Rescaling(1 / 255),
            tf.keras.layers.Conv2D(8, 3, strides=2, activation="relu"),
            tf.keras.layers.GlobalAveragePooling2D(),
            tf.keras.layers.Dense(4, activation="softmax"),
        ]
    )
    model.compile(optimizer=tf.keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    return model


def cifar_shaped(rows: int = 512, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images whose class (0-3) shows as a brighter channel or overall brightness: learnable quickly."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, rows).astype(np.int64)
    x = rng.integers(0, 120, (rows, 32, 32, 3)).astype(np.int16)
    for label in range(3):
        x[y == label, :, :, label] += 120
    x[y == 3] += 60
    return np.clip(x, 0, 255).astype(np.uint8), y


@pytest.fixture(scope="module")
def cifar_train(cluster):
    x, y = cifar_shaped()
    return Dataset.from_numpy(x, y, spark=cluster.spark)


def test_uint8_images_stay_uint8_for_the_cluster(cifar_train):
    assert cifar_train.schema == {"features": "uint8[32, 32, 3]", "label": "int64"}
    assert cifar_train.feature_dtype == "uint8"


def test_fit_trains_on_uint8_images_cast_by_the_reader(cluster, cifar_train, tmp_path):
    result = cluster.fit(
        build_rescaling_cnn,
        cifar_train,
        validation=0.2,
        epochs=4,
        batch_size=32,
        checkpoint_dir=str(tmp_path / "checkpoints"),
        progress=False,
    )
    losses = result.history["loss"]
    assert len(losses) == 4 and losses[-1] < losses[0] * 0.8, losses
    assert "val_loss" in result.history
    x, y = cifar_shaped(rows=128, seed=1)
    predicted = result.model.predict(x, verbose=0).argmax(axis=1)
    assert (predicted == y).mean() > 0.5


def test_split_of_a_spark_written_dataset_keeps_its_columns(cluster):
    df = cluster.spark.createDataFrame([([float(i), 1.0], i % 2) for i in range(200)], ["features", "label"])
    data = Dataset.from_dataframe(df)
    first, second = data.split(0.5)
    assert len(first) + len(second) == 200
    assert first.schema == data.schema == {"features": "array<float>", "label": "bigint"}
    x, _ = first.to_numpy()
    assert x.shape == (len(first), 2)
