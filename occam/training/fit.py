"""``Cluster.fit`` on the driver: launch the ranks through Horovod-on-Spark and stream their progress."""

from __future__ import annotations

import contextlib
import glob
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from occam import config
from occam.backends import rank_interfaces, unshared_path_problem
from occam.data.dataset import Dataset
from occam.errors import ConfigError, TrainingError
from occam.tracking.paths import new_run_id
from occam.tracking.paths import settings as tracking_settings
from occam.tracking.recorder import FAILED, FINISHED, KILLED, recorder_for
from occam.tracking.tensorboard import WithTensorBoard
from occam.training import defaults
from occam.training.callbacks import check_callbacks
from occam.training.environment import rank_environment
from occam.training.events import EventServer
from occam.training.horovod_checks import ensure_gloo_check_cached
from occam.training.interrupt import InterruptWatch
from occam.training.job import TrainingJob
from occam.training.keras_setup import CHECKPOINT_PREFIX, compiled_model_problem, take_weights
from occam.training.messages import EpochEnded, Message, RankFailed, RankOutcome
from occam.training.network import local_interfaces
from occam.training.profile import PROFILE_STEPS
from occam.training.progress import ProgressFollower
from occam.training.rank import run_rank
from occam.training.result import FitResult
from occam.training.runs import fit_record, tensorboard_logdir

if TYPE_CHECKING:
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    from occam.spec import ClusterSpec


class Cluster(Protocol):
    """What ``fit`` uses of :class:`occam.cluster.Cluster` (which calls it): training looks down, not up."""

    @property
    def spark(self) -> SparkSession: ...

    @property
    def sc(self) -> SparkContext: ...

    @property
    def n(self) -> int: ...

    spec: ClusterSpec

    def executor_ids(self) -> list[str]: ...


# How long fit waits, once Horovod returned, for the ranks' last messages to arrive (their connections
# end when their processes do; one to a lost executor may never say so).
DRAIN_SECONDS = 2.0
# Horovod's launcher prints nothing of its own (0); its build checks are cached per verbosity.
HOROVOD_VERBOSITY = 0
# How long fit waits, after ranks failed only because a peer went away, for Spark to notice which executor
# died: the surviving rank reports the broken collective at once, the executor's loss (a Kubernetes pod
# watch event, a closed RPC connection) reaches the driver's list of executors a little later.
LOST_EXECUTOR_WAIT_SECONDS = 60.0
# What a rank says when the collective broke under it because another rank's process went away.
PEER_LOSS_MARKERS = (
    "Horovod has been shut down",
    "HorovodInternalError",
    "Connection closed by peer",
    "Connection reset by peer",
)


def _check_positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name}={value!r} must be a whole number of at least 1")


def default_checkpoint_dir(model_fn: Callable[[], Any]) -> str:
    return os.path.join(config.path("checkpoint_dir"), getattr(model_fn, "__name__", "model").strip("<>"))


def _clear_checkpoints(directory: str) -> None:
    for path in glob.glob(os.path.join(directory, f"{CHECKPOINT_PREFIX}-*")):
        os.remove(path)
    with contextlib.suppress(FileNotFoundError):
        os.remove(os.path.join(directory, "checkpoint"))


def _driver_model(model_fn: Callable[[], Any]) -> Any:
    """``model_fn()``, built once here before any Spark job or rank starts, so that a ``model_fn`` that
    fails or returns no compiled model is reported at once and not by every rank minutes later. The same
    model receives the trained weights at the end."""
    try:
        model = model_fn()
    except Exception as exc:
        raise ConfigError(
            f"model_fn() raised {exc!r} when fit built the model once in this notebook to check it, before "
            "starting the ranks. model_fn must build and compile the model on its own, here as in every rank "
            "(call hvd.rank() and other Horovod functions only where Horovod is initialized)"
        ) from exc
    problem = compiled_model_problem(model)
    if problem:
        raise ConfigError(problem)
    return model


def _rank_env(cluster: Cluster) -> dict[str, str]:
    return rank_environment(os.environ, cluster.spec.cores)


def fit(
    cluster: Cluster,
    model_fn: Callable[[], Any],
    dataset: Dataset,
    *,
    epochs: int = defaults.EPOCHS,
    batch_size: int = defaults.BATCH_SIZE,
    validation: Dataset | float | None = None,
    checkpoint_dir: str | None = None,
    resume: bool = defaults.RESUME,
    scale_lr: bool = defaults.SCALE_LR,
    progress: bool = defaults.PROGRESS,
    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
    start_timeout: float | None = None,
    callbacks: Sequence[Any] | Callable[[], Sequence[Any]] | None = None,
    class_weight: Mapping[int, float] | None = None,
    shuffle: bool = defaults.SHUFFLE,
    steps_per_epoch: int | None = None,
    validation_steps: int | None = None,
    tensorboard: bool | str | os.PathLike[str] | None = None,
    track: bool | None = None,
    profile: bool = False,
) -> FitResult:
    """What :meth:`occam.cluster.Cluster.fit` does; its docstring is the reference for every argument."""
    if not callable(model_fn):
        raise ConfigError("model_fn must be a function that builds and compiles a Keras model")
    if not isinstance(dataset, Dataset):
        raise ConfigError(
            f"dataset must be an occam.Dataset, not {type(dataset).__name__}; build one with "
            "Dataset.from_dataframe / from_numpy / from_parquet / from_hdf5"
        )
    _check_positive_int("epochs", epochs)
    _check_positive_int("batch_size", batch_size)
    for name, steps in (("steps_per_epoch", steps_per_epoch), ("validation_steps", validation_steps)):
        if steps is not None:
            _check_positive_int(name, steps)
    check_callbacks(callbacks)
    if class_weight is not None and not isinstance(class_weight, Mapping):
        raise ConfigError(
            f"class_weight must map each class to its weight, e.g. {{0: 1.0, 1: 5.0}}, not {class_weight!r}"
        )
    if not dataset.labelled:
        raise ConfigError("the dataset has no label column; build it with a label (y=... or label=...)")
    if class_weight is not None and dataset.outputs:
        raise ConfigError("class_weight works for a single output only (as in Keras): the dataset has several labels")

    checkpoint_dir = os.path.expanduser(checkpoint_dir) if checkpoint_dir else default_checkpoint_dir(model_fn)
    problem = unshared_path_problem(cluster.spark, checkpoint_dir, writer="rank 0 writes checkpoints")
    if problem:
        raise ConfigError(problem)
    tracking = tracking_settings(track)
    model_name = getattr(model_fn, "__name__", "model").strip("<>")
    run_id = new_run_id(model_name)
    log_dir = tensorboard_logdir(cluster.spark, tensorboard, tracking.runs_dir, run_id)
    # Horovod's launch asks this again and gets the cached answer; asked here, a dead check is retried.
    ensure_gloo_check_cached(verbose=HOROVOD_VERBOSITY >= 2)
    # The last check, and before the first Spark job (the split).
    model = _driver_model(model_fn)
    if isinstance(validation, float):
        dataset, validation = dataset.split(1 - validation, spark=cluster.spark)
    validation_set = validation if isinstance(validation, Dataset) else None
    # The run is recorded from here on (by a thread of its own, from what the driver already sees).
    recorder = recorder_for(
        tracking,
        fit_record(
            run_id=run_id,
            model_name=model_name,
            model=model,
            executors=cluster.n,
            gpu=cluster.spec.gpu,
            epochs=epochs,
            batch_size=batch_size,
            dataset=dataset,
            validation=validation_set,
            scale_lr=scale_lr,
            resume=resume,
            steps_per_epoch=steps_per_epoch,
            tensorboard_dir=log_dir,
        ),
    )
    on_epoch_end = recorder.chain(on_epoch_end)
    if log_dir:
        callbacks = WithTensorBoard(log_dir, callbacks)
    os.makedirs(checkpoint_dir, exist_ok=True)
    if not resume:
        _clear_checkpoints(checkpoint_dir)

    driver_host = cluster.sc.getConf().get("spark.driver.host", "127.0.0.1")
    with EventServer(host=driver_host) as server:
        job = TrainingJob(
            model_fn=model_fn,
            train=dataset,
            validation=validation_set,
            epochs=epochs,
            batch_size=batch_size,
            scale_lr=scale_lr,
            checkpoint_dir=checkpoint_dir,
            resume=resume,
            events=server.address,
            callbacks=callbacks if callbacks is None or callable(callbacks) else list(callbacks),
            class_weight=None if class_weight is None else {int(k): float(v) for k, v in class_weight.items()},
            shuffle=shuffle,
            steps=steps_per_epoch,
            val_steps=validation_steps,
            monitor=progress,
            profile_steps=PROFILE_STEPS if profile else 0,
        )
        follower = ProgressFollower(server.events, epochs=epochs, progress=progress, on_epoch_end=on_epoch_end)
        follower.start()
        results: list[RankOutcome | None] | None = None
        error: BaseException | None = None
        executors_at_start = set(cluster.executor_ids())
        watch = InterruptWatch(on_interrupt=cluster.sc.cancelAllJobs)
        interrupted = False
        try:
            # Horovod's launcher installs signal handlers, so it must run in the main thread;
            # progress is shown by the follower thread meanwhile.
            with watch:
                results = _run_horovod(cluster, job, start_timeout or cluster.spec.timeout)
        except KeyboardInterrupt:
            # Python's own handler ran (the signal came before Horovod installed its handler, or after).
            interrupted = True
            cluster.sc.cancelAllJobs()
        except Exception as exc:
            error = exc
        finally:
            # The ranks are done: read what they sent last before the channel closes.
            server.drain(DRAIN_SECONDS)
            follower.finish()
    if interrupted or watch.interrupted:
        recorder.finish(KILLED)
        message = _interrupted_message(follower.events, epochs, checkpoint_dir)
        print(message, file=sys.stderr, flush=True)
        raise KeyboardInterrupt(message)
    lost = _lost_executors(cluster, executors_at_start, follower.events) if error is not None else []
    try:
        result = _result(cluster, model, results, error, follower.events, checkpoint_dir, lost)
        result.dataset_key = dataset.key
    except BaseException:
        recorder.finish(FAILED)
        raise
    recorder.finish(FINISHED, result.history, result.epochs, result.model)
    if follower.callback_error is not None:
        raise follower.callback_error
    return result


def _interrupted_message(events: list[Message], epochs: int, checkpoint_dir: str) -> str:
    """The one line a Ctrl-C during fit prints: where training stopped and where it can go on from."""
    import tensorflow as tf

    done = max((e.epoch for e in events if isinstance(e, EpochEnded)), default=0)
    latest = tf.train.latest_checkpoint(checkpoint_dir)
    where = f"fit interrupted during epoch {min(done + 1, epochs)} of {epochs}"
    if latest is None:
        return f"{where}; no epoch had finished, so there is no checkpoint to resume from"
    return f"{where}; fit(..., resume=True) goes on from the checkpoint {latest}"


def only_peers_lost(ranks: int, errors: list[RankFailed]) -> bool:
    """Whether the ranks' reports say nothing but that a peer went away: some ranks reported, some never did,
    and every one that did saw only the broken collective (its own code did not fail)."""
    return 0 < len({e.rank for e in errors}) < ranks and all(
        any(marker in f"{e.error}\n{e.traceback}" for marker in PEER_LOSS_MARKERS) for e in errors
    )


def _lost_executors(cluster: Cluster, at_start: set[str], events: list[Message]) -> list[str]:
    """The executors of ``at_start`` that are gone; when the ranks' reports point at a lost peer, wait (at
    most ``LOST_EXECUTOR_WAIT_SECONDS``) for Spark to notice which one."""
    errors = [e for e in events if isinstance(e, RankFailed)]
    deadline = time.monotonic() + (LOST_EXECUTOR_WAIT_SECONDS if only_peers_lost(cluster.n, errors) else 0.0)
    while True:
        lost = sorted(at_start - set(cluster.executor_ids()))
        if lost or time.monotonic() >= deadline:
            return lost
        time.sleep(1.0)


def failure_message(
    ranks: int,
    errors: list[RankFailed],
    error: BaseException | None,
    lost_executors: list[str],
    latest_checkpoint: str | None,
    checkpoint_dir: str,
) -> str:
    """What the user reads when training fails: the cause first, then where to resume from.

    ``errors`` are the ranks' own reports in arrival order: the first is the cause, the others are ranks that
    lost their peer afterwards. When executors disappeared during training (a pod deleted or evicted, a JVM
    killed), that is the cause: the surviving ranks only report the broken collective.
    """
    resume_hint = (
        f"The last checkpoint is {latest_checkpoint}: fit(..., checkpoint_dir={checkpoint_dir!r}, resume=True) "
        "goes on from it."
        if latest_checkpoint
        else "No epoch finished, so there is no checkpoint to resume from."
    )
    if lost_executors:
        reports = "".join(f"rank {e.rank} then failed: {e.error[:200]}\n" for e in errors)
        return (
            f"{'executors' if len(lost_executors) > 1 else 'executor'} {', '.join(lost_executors)} "
            f"{'were' if len(lost_executors) > 1 else 'was'} lost during training (a pod or JVM died), so "
            f"{len(lost_executors)} of the {ranks} Horovod ranks left the job and the others could not go on. "
            f"Spark replaces lost executors; run fit again.\n{resume_hint}\n{reports}"
        ).rstrip("\n")
    if errors:
        first = errors[0]
        others = "".join(f"rank {e.rank} failed after it: {e.error[:200]}\n" for e in errors[1:])
        return (
            f"rank {first.rank} of {ranks} failed: {first.error}\n{resume_hint}\n{others}"
            f"--- traceback of rank {first.rank} ---\n{first.traceback}"
        )
    return (
        f"training stopped: {error!r} (a rank or its executor was lost before it could report "
        f"why; see the executor logs in the Spark UI).\n{resume_hint}"
    )


def _run_horovod(cluster: Cluster, job: TrainingJob, start_timeout: float) -> list[RankOutcome | None]:
    import horovod.spark

    conf = cluster.sc.getConf()
    driver_addresses = [conf.get("spark.driver.bindAddress", ""), conf.get("spark.driver.host", "")]
    return horovod.spark.run(
        run_rank,
        args=(job,),
        num_proc=cluster.n,
        start_timeout=int(start_timeout),
        use_gloo=True,
        env=_rank_env(cluster),
        verbose=HOROVOD_VERBOSITY,
        nics=rank_interfaces(cluster.spark, cluster.n, driver_addresses, local_interfaces()),
    )


def _result(
    cluster: Cluster,
    model: Any,
    results: list[RankOutcome | None] | None,
    error: BaseException | None,
    events: list[Message],
    checkpoint_dir: str,
    lost_executors: list[str],
) -> FitResult:
    errors = [e for e in events if isinstance(e, RankFailed)]
    if error is not None or errors:
        import tensorflow as tf

        latest = tf.train.latest_checkpoint(checkpoint_dir)
        raise TrainingError(
            failure_message(cluster.n, errors, error, lost_executors, latest, checkpoint_dir)
        ) from error

    assert results is not None
    outcome = next(r for r in results if r is not None)
    take_weights(model, outcome.weights, outcome.input_shape)
    epochs_ended = [e for e in events if isinstance(e, EpochEnded)]
    train_seconds = sum(e.seconds for e in epochs_ended)
    samples = outcome.samples_per_epoch * len(epochs_ended)
    return FitResult(
        model=model,
        history=outcome.history,
        epochs=[e.epoch for e in epochs_ended],
        ranks=cluster.n,
        seconds=outcome.seconds,
        samples_per_second=samples / train_seconds if train_seconds else 0.0,
        checkpoint=outcome.checkpoint,
        events=events,
    )
