"""cluster.fit on the real embedded cluster: two Horovod ranks over Gloo, each reading its Petastorm shard."""

from __future__ import annotations

import sys
import time

import cloudpickle
import pytest

from occam import ConfigError, TrainingError
from occam.examples.digits import build_cnn
from occam.training.messages import EpochEnded, RankStarted

# Executors import nothing from tests/: send this module's functions by value, as a notebook's are.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def build_failing_on_rank_1():
    import horovod.tensorflow.keras as hvd

    # fit also builds the model once in the driver, where Horovod is not initialized
    if hvd.is_initialized() and hvd.rank() == 1:
        raise ValueError("rank 1 cannot build this model")
    return build_cnn()


def build_uncompiled():
    import tensorflow as tf

    return tf.keras.Sequential([tf.keras.layers.Input((8, 8, 1)), tf.keras.layers.Flatten(), tf.keras.layers.Dense(10)])


def build_needing_horovod():
    import horovod.tensorflow.keras as hvd

    hvd.rank()
    return build_cnn()


@pytest.fixture(scope="module")
def digits_test(cluster, digits):
    from occam import Dataset

    _, _, x_test, y_test = digits
    return Dataset.from_numpy(x_test, y_test, spark=cluster.spark)


@pytest.fixture(scope="module")
def trained(cluster, digits_train, digits_test, tmp_path_factory):
    seen = []
    checkpoints = tmp_path_factory.mktemp("checkpoints")
    result = cluster.fit(
        build_cnn,
        digits_train,
        validation=digits_test,
        epochs=6,
        batch_size=32,
        checkpoint_dir=str(checkpoints),
        on_epoch_end=lambda epoch, logs: seen.append((epoch, logs, time.monotonic())),
    )
    return result, seen, time.monotonic(), checkpoints


def test_two_ranks_reach_90_percent_held_out(trained, digits):
    result, _, _, _ = trained
    _, _, x_test, y_test = digits
    _, accuracy = result.model.evaluate(x_test, y_test, verbose=0)
    assert accuracy >= 0.9
    assert result.ranks == 2
    assert result.history["val_accuracy"][-1] >= 0.85


def test_metrics_are_streamed_while_training_runs(trained):
    result, seen, returned_at, _ = trained
    assert [epoch for epoch, _, _ in seen] == [1, 2, 3, 4, 5, 6]
    assert set(seen[0][1]) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    # the first epoch was reported well before fit returned, not all at the end
    assert seen[0][2] < seen[-1][2] < returned_at
    assert result.epochs == [1, 2, 3, 4, 5, 6]
    assert result.events[0] == RankStarted(size=2, initial_epoch=0, steps=result.events[0].steps)
    ended = [e for e in result.events if isinstance(e, EpochEnded)]
    assert [e.epoch for e in ended] == [1, 2, 3, 4, 5, 6]
    assert [e.metrics for e in ended] == [logs for _, logs, _ in seen]
    assert len(result.history["loss"]) == 6 and result.history["loss"][-1] < result.history["loss"][0]


def test_a_checkpoint_per_epoch(trained):
    result, _, _, checkpoints = trained
    assert result.checkpoint == str(checkpoints / "epoch-6")
    names = {p.name.split(".")[0] for p in checkpoints.iterdir()}
    assert {"epoch-4", "epoch-5", "epoch-6"} <= names  # the three newest are kept


def test_resume_continues_at_the_next_epoch(cluster, digits_train, tmp_path):
    first = cluster.fit(build_cnn, digits_train, epochs=2, checkpoint_dir=str(tmp_path), progress=False)
    resumed = cluster.fit(build_cnn, digits_train, epochs=4, checkpoint_dir=str(tmp_path), resume=True, progress=False)
    assert resumed.epochs == [3, 4]
    assert len(resumed.history["loss"]) == 2
    # it went on from the trained weights, not from scratch
    assert resumed.history["loss"][0] < first.history["loss"][0]
    fresh = cluster.fit(build_cnn, digits_train, epochs=1, checkpoint_dir=str(tmp_path), progress=False)
    assert fresh.epochs == [1]


def test_a_failing_rank_surfaces_its_own_traceback(cluster, digits_train, tmp_path):
    with pytest.raises(TrainingError) as info:
        cluster.fit(build_failing_on_rank_1, digits_train, epochs=1, checkpoint_dir=str(tmp_path), progress=False)
    message = str(info.value)
    assert "rank 1 of 2 failed" in message
    assert "ValueError: rank 1 cannot build this model" in message
    assert "build_failing_on_rank_1" in message  # the rank's own frames
    assert "no checkpoint to resume from" in message
    # the cluster is still usable afterwards
    assert cluster.sc.parallelize(range(10)).sum() == 45


def test_an_uncompiled_model_is_explained_before_any_spark_job(cluster, digits_train, tmp_path):
    jobs_before = cluster.sc.statusTracker().getJobIdsForGroup()
    with pytest.raises(ConfigError, match=r"must return a compiled Keras model: call model.compile"):
        cluster.fit(build_uncompiled, digits_train, epochs=1, checkpoint_dir=str(tmp_path), progress=False)
    with pytest.raises(ConfigError, match=r"model_fn\(\) raised ValueError\('Horovod has not been initialized"):
        cluster.fit(build_needing_horovod, digits_train, epochs=1, validation=0.2, progress=False)
    assert cluster.sc.statusTracker().getJobIdsForGroup() == jobs_before


def test_bad_arguments_fail_before_training(cluster, digits_train):
    with pytest.raises(ConfigError, match="epochs=0"):
        cluster.fit(build_cnn, digits_train, epochs=0)
    with pytest.raises(ConfigError, match="must be an occam.Dataset, not list"):
        cluster.fit(build_cnn, [1, 2, 3])


def build_sequential_without_input():
    """The common style without an Input layer: Keras creates the weights only when it first sees data."""
    import tensorflow as tf

    model = tf.keras.Sequential(
        [
            tf.keras.layers.Flatten(),
            tf.keras.layers.Dense(32, activation="relu"),
            tf.keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def build_subclassed():
    import tensorflow as tf

    class Digits(tf.keras.Model):
        def __init__(self) -> None:
            super().__init__()
            self.flatten = tf.keras.layers.Flatten()
            self.hidden = tf.keras.layers.Dense(32, activation="relu")
            self.out = tf.keras.layers.Dense(10, activation="softmax")

        def call(self, inputs):
            return self.out(self.hidden(self.flatten(inputs)))

    model = Digits()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


@pytest.mark.parametrize("build", [build_sequential_without_input, build_subclassed], ids=["no-input", "subclassed"])
def test_models_built_only_by_data_come_back_with_their_trained_weights(cluster, digits_train, digits, tmp_path, build):
    _, _, x_test, y_test = digits
    result = cluster.fit(build, digits_train, epochs=3, batch_size=32, checkpoint_dir=str(tmp_path), progress=False)
    assert result.model.built
    _, accuracy = result.model.evaluate(x_test, y_test, verbose=0)
    assert accuracy > 0.4, "the driver's model holds the trained weights, not fresh ones (chance: 0.1)"
