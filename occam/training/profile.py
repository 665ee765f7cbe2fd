"""Where a training step's time goes, measured in each rank after its training: the input pipeline, the
gradient exchange and the compute, for :func:`occam.scaling`.

Inside Keras' compiled train step the three overlap or are fused (the next batch is prefetched while this
one trains; Horovod's allreduce runs inside the step's graph), so each is timed on its own, with the same
parts the step uses:

- ``input_seconds``: the rank's own input pipeline (Petastorm reader, decoding, batching) alone, per batch;
- ``exchange_seconds``: one ``hvd.allreduce`` of tensors shaped like the model's gradients, per step, in
  step with the other ranks (what DistributedOptimizer does each step; 0 with one rank);
- ``step_seconds``: the measured training step (the epochs' training time over their batches);
- compute is the rest: ``step - exchange``. When ``input_seconds`` exceeds that, the pipeline is the limit.
"""

from __future__ import annotations

import time
from typing import Any

from occam.training.messages import StepProfile

#: Batches timed for the input pipeline, and allreduces for the exchange (after a warm-up of each).
PROFILE_STEPS = 20


def time_input(tf_dataset: Any, steps: int) -> float:
    """Seconds per batch of ``tf_dataset`` alone (one batch of warm-up first)."""
    iterator = iter(tf_dataset)
    next(iterator)
    started = time.perf_counter()
    for _ in range(steps):
        next(iterator)
    return (time.perf_counter() - started) / steps


def time_exchange(hvd: Any, tf: Any, model: Any, steps: int) -> float:
    """Seconds per allreduce of tensors shaped like ``model``'s gradients, all ranks together."""
    if hvd.size() == 1:
        return 0.0
    # horovod.tensorflow's allreduce (the one DistributedOptimizer uses), not the Keras module's, which
    # copies its result to numpy.
    import horovod.tensorflow as hvd_tf

    grads = [tf.zeros_like(w) for w in model.trainable_weights]

    def exchange() -> None:
        for tensor in hvd_tf.grouped_allreduce(grads):
            tensor.numpy()  # wait for the result

    exchange()
    started = time.perf_counter()
    for _ in range(steps):
        exchange()
    return (time.perf_counter() - started) / steps


def step_timer(tf: Any) -> Any:
    """A Keras callback that adds up the training time of each epoch's batches (not validation)."""

    class StepTimer(tf.keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.seconds, self.batches = 0.0, 0
            self.epoch_seconds: list[float] = []

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.started, self.count = time.perf_counter(), 0

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            self.count = batch + 1
            self.last = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            if self.count:
                self.epoch_seconds.append((self.last - self.started) / self.count)

        def per_step(self) -> float:
            # The first epoch traces the graph: left out when there is a later one.
            steady = self.epoch_seconds[1:] or self.epoch_seconds
            return sum(steady) / len(steady) if steady else 0.0

    return StepTimer()


def profile_rank(hvd: Any, tf: Any, model: Any, tf_dataset: Any, timer: Any, steps: int) -> StepProfile:
    return StepProfile(
        rank=hvd.rank(),
        step_seconds=timer.per_step(),
        input_seconds=time_input(tf_dataset, steps),
        exchange_seconds=time_exchange(hvd, tf, model, steps),
    )
