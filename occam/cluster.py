"""``start_cluster`` and :class:`Cluster`: a Spark driver here, executors on a backend, one object."""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import html
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from occam import config
from occam.backends import Backend, select_backend
from occam.errors import ClusterStartError, ClusterStoppedError, ConfigError
from occam.idle import IdleWatcher
from occam.links import SERVICE_PREFIX_ENV, browser_link
from occam.spec import ClusterSpec
from occam.training import defaults as fit_defaults

if TYPE_CHECKING:
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    from occam.data.dataset import Dataset
    from occam.training.result import FitResult

POLL_SECONDS = 0.25

_live_clusters: weakref.WeakSet[Cluster] = weakref.WeakSet()


@atexit.register
def _stop_all_at_exit() -> None:
    for cluster in list(_live_clusters):
        cluster.stop()


def list_clusters() -> list[Cluster]:
    """The clusters this Python process (this notebook's kernel) is running."""
    return sorted(_live_clusters, key=lambda c: c.started_at or 0.0)


def connect(name: str) -> Cluster:
    """The running cluster of this notebook called ``name`` (see :func:`list_clusters`)."""
    for cluster in _live_clusters:
        if cluster.name == name:
            return cluster
    running = ", ".join(c.name for c in list_clusters()) or "none"
    raise ConfigError(
        f"no running cluster named {name!r} in this notebook (running: {running}); start one with start_cluster()"
    )


def start_cluster(
    n: int | None = None,
    *,
    gpu: bool = False,
    cores: int | None = None,
    memory: str | int | None = None,
    backend: str | None = None,
    timeout: float | None = None,
    name: str | None = None,
    progress: bool = True,
    verbose: bool | None = None,
) -> Cluster:
    """Start a Spark cluster with ``n`` executors and return it once all of them have registered.

    Args:
        n: number of executors (default 2); :meth:`Cluster.fit` runs one Horovod rank on each.
        gpu: give each executor one GPU (raises at once if there is none to give).
        cores: CPU cores per executor (default ``1``, or ``OCCAM_CORES``).
        memory: JVM memory per executor, Spark-style (``"1g"``, ``"512m"``; default ``OCCAM_MEMORY`` or ``1g``).
            TensorFlow runs in each executor's Python worker, outside this limit.
        backend: ``"embedded"`` (executors on this machine), or ``"auto"`` (default, or ``OCCAM_BACKEND``),
            which picks the cluster the environment is prepared for and falls back to ``"embedded"``.
        timeout: seconds to wait for all executors (default 180, or ``OCCAM_TIMEOUT``). When it runs out,
            :class:`~occam.errors.ClusterStartError` says how many registered and shows their logs, and
            the half-started cluster is removed.
        name: a name for the cluster (default: ``occam-`` and a random suffix).
        progress: show a progress bar while executors start (in a notebook or on a terminal; a log gets none).
        verbose: let Spark's warnings and TensorFlow's start-up notices through to this notebook (default: the
            ``OCCAM_LOG_LEVEL`` setting, ``error``: they go to the cluster's log only). See
            :data:`occam.config.LOG_LEVELS`.

    Bad input raises :class:`~occam.errors.ConfigError` before anything starts. Use the cluster as a
    context manager, or call :meth:`Cluster.stop`; clusters still running at interpreter exit are stopped.

    In a script run by spark-submit (``occam submit``), this attaches to the session spark-submit made
    instead, sized by the submission; see :mod:`occam.backends.submitted`.
    """
    backend_cls = select_backend(config.get("backend", backend))
    spec = backend_cls.request(n, gpu=gpu, cores=cores, memory=memory, timeout=timeout, name=name)
    spec = dataclasses.replace(spec, log_level=config.log_level(verbose))
    quiet_tensorflow(spec.log_level)
    cluster = Cluster(spec, backend_cls(spec))
    cluster._start(progress=progress)
    return cluster


def quiet_tensorflow(log_level: str) -> None:
    """Keep TensorFlow's C++ start-up notices (CPU features, oneDNN) out of this process's output, unless the
    log level asks for them. Only before TensorFlow is first imported (it reads the variable then), and never
    over a value the user set."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", config.TF_CPP_LEVELS[log_level])


def _interactive() -> bool:
    """Whether a redrawn progress bar can be seen: a notebook kernel, or a terminal (not a log file, not CI)."""
    import sys

    from occam.training.dashboard import front_end

    return front_end() != "text" or sys.stderr.isatty()


class Cluster:
    """A running cluster: its Spark session, its executors, and training on them.

    Create one with :func:`start_cluster`. ``cluster.spark`` is an ordinary SparkSession whose
    executors are this cluster's; :meth:`fit` trains a Keras model with one Horovod rank per executor.
    """

    def __init__(self, spec: ClusterSpec, backend: Backend) -> None:
        self.spec = spec
        self.backend = backend
        self._spark: SparkSession | None = None
        self._stopped = False
        self._lock = threading.Lock()
        self.started_at: float | None = None
        self._idle: IdleWatcher | None = None
        #: Why the cluster stopped when the student did not stop it (the idle limit), for the next call's error.
        self.stopped_because: str | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def _start(self, progress: bool) -> None:
        self.backend.check()
        _live_clusters.add(self)
        try:
            self._spark = self.backend.launch()
            self._wait_for_executors(progress)
        except BaseException:
            self.stop()
            raise
        self.started_at = time.time()
        minutes = config.get("executor_idle_minutes")
        if minutes < 0:
            raise ConfigError(f"executor_idle_minutes={minutes!r} must be 0 (never) or more minutes")
        if minutes > 0:
            self._idle = IdleWatcher(minutes * 60, self._job_activity, lambda: self._release_idle(minutes)).start()

    def _job_activity(self) -> tuple[bool, int]:
        """(a Spark job runs now, the newest job id Spark knows): what the idle watcher looks at."""
        spark = self._spark
        if spark is None:
            return False, -1
        tracker = spark.sparkContext.statusTracker()
        jobs = tracker.getJobIdsForGroup(None)
        return bool(tracker.getActiveJobsIds()), max(jobs, default=-1)

    def _release_idle(self, minutes: float) -> None:
        with self._lock:
            if self._stopped:
                return
            self.stopped_because = (
                f"its executors were released after {minutes:g} minutes with no Spark job and no fit (the course's "
                "idle limit, OCCAM_EXECUTOR_IDLE_MINUTES), so that others can use them"
            )
        self.stop()

    def _busy(self) -> contextlib.AbstractContextManager[None]:
        """Work the idle watcher must count as activity while it lasts (fit, evaluate, predict)."""
        return self._idle.busy() if self._idle is not None else contextlib.nullcontext()

    def _wait_for_executors(self, progress: bool, target: int | None = None, timeout: float | None = None) -> None:
        """Wait until exactly ``target`` executors (default: the spec's n) are registered."""
        from tqdm.auto import tqdm

        target = self.spec.n if target is None else target
        timeout = self.spec.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        with tqdm(
            total=target,
            desc=f"{self.spec.name}: executors",
            unit="executor",
            disable=not progress or not _interactive(),
            leave=False,
        ) as bar:
            while True:
                self.backend.raise_if_failed()
                ready = self.executor_count()
                bar.update(min(ready, target) - bar.n)
                if ready == target:
                    return
                if time.monotonic() > deadline:
                    raise ClusterStartError(
                        f"{ready} of {target} executors registered within {timeout:.0f} s "
                        f"(cluster {self.spec.name}, {self.backend.name} backend). Raise timeout= if the "
                        "machine is just slow, or read the log below for why executors did not start.\n"
                        + self.backend.diagnostics()
                    )
                time.sleep(POLL_SECONDS)

    def scale(self, n: int, *, timeout: float | None = None, progress: bool = True) -> None:
        """Grow or shrink the cluster to ``n`` executors and wait until it has exactly that many.

        The backend checks the request first (the embedded cluster cannot grow past the size it was
        started with; on Kubernetes the namespace's quota must fit the extra executors).
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"scale(n={n!r}): a cluster needs a whole number of executors, at least 1")
        sc = self.sc
        self.backend.check_scale(n)
        current = self.executor_ids()
        jvm: Any = sc._jvm
        if n > len(current):
            # requestTotalExecutors sets the target; requestExecutors(k) adds to a target that killing
            # executors already lowered, and so asks for nothing new.
            sc._jsc.sc().requestTotalExecutors(n, 0, jvm.PythonUtils.toScalaMap({}))
        elif n < len(current):
            victims = sorted(current, key=lambda i: int(i) if i.isdigit() else 0)[n:]
            sc._jsc.sc().killExecutors(jvm.PythonUtils.toSeq(victims))
        self._wait_for_executors(progress, target=n, timeout=timeout)
        self.spec = dataclasses.replace(self.spec, n=n)

    def stop(self) -> None:
        """Stop the executors and the driver, and remove everything the cluster made. Idempotent."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            _live_clusters.discard(self)
            self._spark = None
            self.backend.stop()
        # Outside the lock: a watcher in the middle of releasing the cluster waits for it.
        if self._idle is not None:
            self._idle.stop()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- state ---------------------------------------------------------------------------------

    @property
    def stopped(self) -> bool:
        return self._stopped

    @property
    def spark(self) -> SparkSession:
        """The driver's SparkSession; its jobs run on this cluster's executors."""
        if self._stopped or self._spark is None:
            why = f" ({self.stopped_because})" if self.stopped_because else ""
            raise ClusterStoppedError(
                f"cluster {self.spec.name} is stopped{why}; start a new one with occam.start_cluster()"
            )
        return self._spark

    @property
    def sc(self) -> SparkContext:
        return self.spark.sparkContext

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def n(self) -> int:
        return self.spec.n

    def executor_ids(self) -> list[str]:
        """Spark's ids of the executors registered right now."""
        if self._spark is None:
            return []
        jvm: Any = self._spark.sparkContext._jvm
        ids = jvm.scala.collection.JavaConverters.seqAsJavaList(self._spark.sparkContext._jsc.sc().getExecutorIds())
        return [str(i) for i in ids]

    def executor_count(self) -> int:
        """Executors registered right now (the driver's own block manager is not counted)."""
        if self._spark is None:
            return 0
        return max(0, self._spark.sparkContext._jsc.sc().getExecutorMemoryStatus().size() - 1)

    @property
    def dashboard_link(self) -> str | None:
        """The Spark UI: through the Jupyter server's proxy in JupyterHub, else its direct address."""
        if self._stopped or self._spark is None:
            return None
        url = self._spark.sparkContext.uiWebUrl
        if not url:
            return None
        if os.environ.get(SERVICE_PREFIX_ENV):
            return browser_link(url, "/jobs/")
        return url

    def status(self) -> dict[str, Any]:
        """A snapshot: name, backend, executors registered and asked for, resources, Spark UI link."""
        state = "stopped" if self._stopped else "running"
        info: dict[str, Any] = {
            "name": self.spec.name,
            "state": state,
            "backend": self.backend.name,
            "executors": self.executor_count() if not self._stopped else 0,
            "requested": self.spec.n,
            "cores per executor": self.spec.cores,
            "memory per executor": self.spec.memory,
            "gpu": self.spec.gpu,
            "dashboard": self.dashboard_link,
        }
        if self.stopped_because:
            info["stopped because"] = self.stopped_because
        elif self._idle is not None and not self._stopped:
            info["idle for"] = f"{self._idle.idle_seconds() / 60:.1f} of {self._idle.limit / 60:g} minutes"
        if not self._stopped:
            info["application id"] = self.sc.applicationId
            info.update(self.backend.describe())
        return info

    def __repr__(self) -> str:
        s = self.status()
        return (
            f"<Cluster {s['name']} {s['state']}: {s['executors']}/{s['requested']} executors, "
            f"{s['backend']}, dashboard {s['dashboard'] or '-'}>"
        )

    def _repr_html_(self) -> str:
        s = self.status()
        rows = []
        for key, value in s.items():
            if key == "dashboard" and value:
                cell = f'<a href="{html.escape(value)}" target="_blank">Spark UI</a>'
            else:
                cell = html.escape(str(value if value is not None else "-"))
            rows.append(f"<tr><th style='text-align:left'>{html.escape(key)}</th><td>{cell}</td></tr>")
        colour = "#2e7d32" if s["state"] == "running" else "#9e9e9e"
        return (
            f"<div><strong>Occam cluster</strong> "
            f"<span style='color:{colour}'>&#9679; {html.escape(s['state'])}</span>"
            f"<table>{''.join(rows)}</table></div>"
        )

    # -- training ------------------------------------------------------------------------------

    def fit(
        self,
        model_fn: Callable[[], Any],
        dataset: Dataset,
        *,
        epochs: int = fit_defaults.EPOCHS,
        batch_size: int = fit_defaults.BATCH_SIZE,
        validation: Dataset | float | None = None,
        checkpoint_dir: str | None = None,
        resume: bool = fit_defaults.RESUME,
        scale_lr: bool = fit_defaults.SCALE_LR,
        progress: bool = fit_defaults.PROGRESS,
        on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
        start_timeout: float | None = None,
        callbacks: Sequence[Any] | Callable[[], Sequence[Any]] | None = None,
        class_weight: Mapping[int, float] | None = None,
        shuffle: bool = fit_defaults.SHUFFLE,
        steps_per_epoch: int | None = None,
        validation_steps: int | None = None,
        tensorboard: bool | str | os.PathLike[str] | None = None,
        track: bool | None = None,
        profile: bool = False,
    ) -> FitResult:
        """Train ``model_fn()``'s Keras model on ``dataset``: data-parallel, one Horovod rank per executor.

        Args:
            model_fn: builds and compiles the model (``model.compile(optimizer, loss, metrics)``). It runs in
                every rank, so it must be a plain function (it is pickled); each rank wraps the optimizer in
                ``hvd.DistributedOptimizer`` and rank 0's initial weights are broadcast to all. It also
                runs once here first, to check that it returns a compiled Keras model; that model gets
                the trained weights.
            dataset: the training :class:`~occam.Dataset`; each rank reads its own shard through Petastorm.
            epochs: epochs to train (with ``resume=True``: the total, counting epochs already done).
            batch_size: per-rank batch size; each step averages gradients over ``batch_size * n`` samples.
            validation: a :class:`~occam.Dataset`, or a fraction of ``dataset`` to hold out (e.g. ``0.2``).
            checkpoint_dir: where rank 0 writes a checkpoint after every epoch (default
                ``~/occam-checkpoints/<model_fn name>``, or under ``OCCAM_CHECKPOINT_DIR``).
            resume: continue from the last checkpoint there, at the next epoch. Without it old checkpoints
                in that directory are removed first.
            scale_lr: multiply the optimizer's learning rate by the number of ranks (linear scaling).
            progress: show the live dashboard while training runs: curves, throughput per rank, the ranks'
                CPU/memory/GPU, epoch time and ETA; a widget in a notebook, plain lines in a log
                (:mod:`occam.training.dashboard`; ``OCCAM_DASHBOARD`` picks). ``False`` turns it off.
            on_epoch_end: called on the driver as ``on_epoch_end(epoch, metrics)`` after every epoch, while
                training continues.
            start_timeout: seconds Horovod waits for all ranks to start (default: the cluster's timeout).
            callbacks: Keras callbacks, as Horovod users expect them: a list (pickled to the ranks), or a
                function returning the list (called in each rank; use it for callbacks that do not pickle).
                Callbacks that decide (``EarlyStopping``, ``ReduceLROnPlateau``, ``TerminateOnNaN``, your own)
                run in every rank on metrics averaged over the ranks, so all ranks stop at the same epoch;
                callbacks that write (``ModelCheckpoint``, ``CSVLogger``, ``TensorBoard``, ``BackupAndRestore``)
                run in rank 0 only, so each file is written once (on Kubernetes, under the shared work volume).
            class_weight: weights of the classes in the loss, as Keras' ``fit`` takes them (``{0: 1.0, 1: 5.0}``).
            shuffle: shuffle the rows each rank reads (Petastorm's shuffling queue); ``False`` keeps file order.
            steps_per_epoch: batches each rank runs per epoch (default: so that the ranks together see the
                whole dataset once).
            validation_steps: batches each rank runs per validation (default: the whole validation set once).
            tensorboard: ``True`` makes rank 0 write TensorBoard logs to this run's folder,
                ``<runs dir>/<run id>/tensorboard`` (runs dir: ``OCCAM_RUNS_DIR``, default ``<cache dir>/runs``,
                on the shared work volume on Kubernetes); a folder writes them there instead. Show them with
                :func:`occam.tensorboard`.
            track: record this fit as an MLflow run (parameters, metrics per epoch, the model and history as
                artifacts; see :func:`occam.runs` and :func:`occam.mlflow_ui`). Default: on, unless
                ``OCCAM_TRACKING=0``. A tracking store that fails never fails the fit: it warns once.
            profile: after training, each rank times where a step's time goes (its input pipeline alone, one
                gradient allreduce alone, the step itself; :mod:`occam.training.profile`) and sends a
                :class:`~occam.training.messages.StepProfile`, kept in ``result.events``. :func:`occam.scaling`
                uses it.

        Returns a :class:`~occam.training.result.FitResult`. Bad arguments, and a ``model_fn`` that raises
        or returns no compiled Keras model, raise :class:`~occam.errors.ConfigError` before any Spark job
        starts. If a rank fails, raises :class:`~occam.errors.TrainingError` with that rank's own traceback
        and the checkpoint to resume from.
        """
        from occam.training.fit import fit

        with self._busy():
            return fit(
                self,
                model_fn,
                dataset,
                epochs=epochs,
                batch_size=batch_size,
                validation=validation,
                checkpoint_dir=checkpoint_dir,
                resume=resume,
                scale_lr=scale_lr,
                progress=progress,
                on_epoch_end=on_epoch_end,
                start_timeout=start_timeout,
                callbacks=callbacks,
                class_weight=class_weight,
                shuffle=shuffle,
                steps_per_epoch=steps_per_epoch,
                validation_steps=validation_steps,
                tensorboard=tensorboard,
                track=track,
                profile=profile,
            )

    def evaluate(
        self,
        model: Any,
        dataset: Dataset,
        *,
        batch_size: int = fit_defaults.BATCH_SIZE,
        custom_objects: Mapping[str, Any] | None = None,
    ) -> dict[str, float]:
        """The loss and metrics of ``model`` on ``dataset``, computed on the executors in parallel.

        Args:
            model: a :class:`~occam.training.result.FitResult`, a compiled Keras model, or the path of one
                saved with ``model.save`` (a ``.keras`` or ``.h5`` file).
            dataset: a labelled :class:`~occam.Dataset` the executors can read (on Kubernetes: on the shared
                work volume).
            batch_size: rows per batch in each executor.
            custom_objects: custom layers, losses or metrics Keras needs to load the model, by name.

        Returns ``{"loss": ..., "accuracy": ...}`` as Keras' ``model.evaluate(return_dict=True)`` names them:
        each executor's results weighted by its rows (exact for the means Keras reports).
        """
        from occam.training.evaluate import evaluate

        with self._busy():
            return evaluate(self, model, dataset, batch_size=batch_size, custom_objects=custom_objects)

    def predict(
        self,
        model: Any,
        dataset: Dataset,
        *,
        batch_size: int = fit_defaults.BATCH_SIZE,
        custom_objects: Mapping[str, Any] | None = None,
        output: str = "numpy",
        path: str | os.PathLike[str] | None = None,
    ) -> Any:
        """``model``'s outputs for every row of ``dataset``, computed on the executors, in the dataset's order.

        Args:
            model: a :class:`~occam.training.result.FitResult`, a Keras model, or the path of a saved one.
            dataset: a :class:`~occam.Dataset` the executors can read (labels, if any, are ignored).
            batch_size: rows per batch in each executor.
            custom_objects: custom layers Keras needs to load the model, by name.
            output: ``"numpy"`` (default) returns the predictions in this process's memory; ``"dataframe"``
                has the executors write them as Parquet, one dataset file at a time, and returns a Spark
                DataFrame of them: for predictions larger than this notebook's memory.
            path: with ``output="dataframe"``, a new or empty folder for the Parquet files (default: a new
                folder under the dataset cache, ``<OCCAM_CACHE_DIR>/datasets/predictions/``); on Kubernetes it
                must be on the shared work volume.

        Returns, for ``"numpy"``, an array with one row of outputs per dataset row, or for a model with several
        outputs a dict (by output name) or list of such arrays, as Keras' ``predict`` returns them. For
        ``"dataframe"``, a DataFrame ordered as the dataset, with the column ``row`` (the row's position in the
        dataset) and ``prediction`` (a number, or an array of numbers, per row), or one column per output
        (its name, or ``output_0``, ``output_1``... for a list of outputs).
        """
        from occam.training.evaluate import predict

        with self._busy():
            return predict(
                self, model, dataset, batch_size=batch_size, custom_objects=custom_objects, output=output, path=path
            )
