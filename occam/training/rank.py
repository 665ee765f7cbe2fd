"""The code each Horovod rank runs inside a Spark executor during ``Cluster.fit``."""

from __future__ import annotations

import contextlib
import time
from typing import Any

from occam.data.dataset import Dataset
from occam.training.callbacks import rank_callbacks
from occam.training.events import EventClient
from occam.training.job import TrainingJob
from occam.training.keras_setup import built_input_shape, checkpoint_manager, distribute, epochs_done
from occam.training.messages import BatchProgress, EpochEnded, RankFailed, RankOutcome, RankStarted
from occam.training.monitor import monitor_callback
from occam.training.profile import profile_rank, step_timer

BATCH_EVENT_SECONDS = 1.0


def _decoder(tf: Any, data: Dataset, model_dtype: Any) -> Any:
    """Features as the model takes them: raw bytes decoded to their dtype, reshaped, cast to the input dtype."""
    layout = data.layout
    shape = data.feature_shape

    def decode(x: Any) -> Any:
        if layout is not None:
            dtype = tf.as_dtype(layout.feature_dtype)
            if dtype in (tf.uint32, tf.uint64):  # decode_raw has no unsigned 32/64-bit: reinterpret the bits
                signed = tf.int32 if dtype == tf.uint32 else tf.int64
                x = tf.bitcast(tf.io.decode_raw(x, signed), dtype)
            else:
                x = tf.io.decode_raw(x, dtype)
        if shape:
            x = tf.reshape(x, [-1, *shape])
        return x if x.dtype == model_dtype else tf.cast(x, model_dtype)

    return decode


def _to_xy(data: Dataset, dataset: Any, model_dtype: Any) -> Any:
    """Petastorm's batches as ``(x, y)`` (or ``x``) for Keras, features decoded for the model."""
    import tensorflow as tf

    features, labels = data.features, data.label_columns
    decode = _decoder(tf, data, model_dtype)

    def split(batch: Any) -> Any:
        x = decode(getattr(batch, features))
        if not labels:
            return x
        # One label, or a dict by output name / a tuple by position for a model with several outputs.
        return x, data.labels_as_keras_takes_them([getattr(batch, c) for c in labels], sequence=tuple)

    return dataset.map(split, num_parallel_calls=tf.data.AUTOTUNE)


def _input_dtype(tf: Any, model: Any) -> Any:
    """The dtype of the model's (first) input; float32 when it does not say."""
    inputs = getattr(model, "inputs", None)
    return inputs[0].dtype if inputs else tf.float32


def _converter(dataset: Any) -> Any:
    from occam.data.parquet import guarded_pyarrow

    guarded_pyarrow()  # before Petastorm reads any file in this rank
    from petastorm.spark.spark_dataset_converter import SparkDatasetConverter

    return SparkDatasetConverter(dataset.url, dataset.file_urls(), len(dataset))


def _progress_callback(tf: Any, job: TrainingJob, events: EventClient, steps: int) -> Any:
    class Progress(tf.keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.epoch = epoch + 1
            self.epoch_started = self.last_sent = time.perf_counter()

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            now = time.perf_counter()
            if now - self.last_sent >= BATCH_EVENT_SECONDS:
                self.last_sent = now
                metrics = {k: float(v) for k, v in (logs or {}).items() if getattr(v, "ndim", 0) == 0}
                events.send(BatchProgress(epoch=self.epoch, batch=batch + 1, steps=steps, metrics=metrics))

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            metrics = {k: float(v) for k, v in (logs or {}).items()}
            seconds = time.perf_counter() - self.epoch_started
            events.send(EpochEnded(epoch=epoch + 1, epochs=job.epochs, metrics=metrics, seconds=seconds))

    return Progress()


def _checkpoint_callback(tf: Any, manager: Any) -> Any:
    class SaveEachEpoch(tf.keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            manager.save(checkpoint_number=epoch + 1)

    return SaveEachEpoch()


def run_rank(job: TrainingJob) -> RankOutcome | None:
    """Train on this rank's shard; rank 0 returns the weights and history, other ranks ``None``.

    Any exception is sent to the driver with this rank's traceback before it propagates.
    """
    import horovod.tensorflow.keras as hvd

    hvd.init()
    rank, size = hvd.rank(), hvd.size()
    events = EventClient(job.events)
    try:
        return _train(job, hvd, rank, size, events)
    except BaseException as exc:
        events.send(RankFailed.from_exception(rank, exc))
        raise
    finally:
        events.close()


def _train(job: TrainingJob, hvd: Any, rank: int, size: int, events: EventClient) -> RankOutcome | None:
    import tensorflow as tf

    model = distribute(job.model_fn(), hvd, scale_lr=job.scale_lr)
    model_dtype = _input_dtype(tf, model)
    manager = checkpoint_manager(model, job.checkpoint_dir)
    initial_epoch = 0
    if job.resume and manager.latest_checkpoint:
        manager.checkpoint.restore(manager.latest_checkpoint)
        initial_epoch = min(epochs_done(manager.latest_checkpoint), job.epochs)
    steps = job.steps_per_epoch(size)
    # Metrics are averaged over the ranks before any other callback sees them: the user's deciding callbacks
    # (early stopping...) then decide the same in every rank (occam.training.callbacks).
    callbacks = [hvd.callbacks.BroadcastGlobalVariablesCallback(0), hvd.callbacks.MetricAverageCallback()]
    callbacks += rank_callbacks(job.callbacks, rank)
    if job.monitor:
        callbacks.append(monitor_callback(tf, events, rank, job.batch_size))
    timer = step_timer(tf) if job.profile_steps else None
    if timer is not None:
        callbacks.append(timer)
    if rank == 0:
        callbacks += [_checkpoint_callback(tf, manager), _progress_callback(tf, job, events, steps)]
        events.send(RankStarted(size=size, initial_epoch=initial_epoch, steps=steps))

    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        train_data = stack.enter_context(
            _converter(job.train).make_tf_dataset(
                batch_size=job.batch_size,
                num_epochs=None,
                workers_count=job.reader_workers,
                shuffling_queue_capacity=job.shuffle_buffer if job.shuffle else 0,
                cur_shard=rank,
                shard_count=size,
                seed=17 + rank,
            )
        )
        fit_args: dict[str, Any] = {}
        if job.validation is not None:
            val_data = stack.enter_context(
                _converter(job.validation).make_tf_dataset(
                    batch_size=job.batch_size,
                    num_epochs=None,
                    workers_count=1,
                    cur_shard=rank,
                    shard_count=size,
                )
            )
            fit_args = {
                "validation_data": _to_xy(job.validation, val_data, model_dtype),
                "validation_steps": job.validation_steps(size),
            }
        train_xy = _to_xy(job.train, train_data, model_dtype)
        history = model.fit(
            train_xy,
            steps_per_epoch=steps,
            epochs=job.epochs,
            initial_epoch=initial_epoch,
            callbacks=callbacks,
            class_weight=job.class_weight,
            verbose=0,
            **fit_args,
        )
        if timer is not None:
            events.send(profile_rank(hvd, tf, model, train_xy, timer, job.profile_steps))
    if rank != 0:
        return None
    return RankOutcome(
        weights=model.get_weights(),
        history={k: [float(v) for v in vs] for k, vs in history.history.items()},
        initial_epoch=initial_epoch,
        seconds=time.perf_counter() - started,
        samples_per_epoch=steps * job.batch_size * size,
        checkpoint=manager.latest_checkpoint,
        input_shape=built_input_shape(model),
    )
