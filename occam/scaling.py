"""``occam.scaling``: the same model trained for the same budget on 1, 2, 4... executors, with and without GPUs,
and what it shows: throughput, speedup, parallel efficiency, time to an accuracy, and where a step's time goes.

Each configuration gets a cluster of its own, started and stopped here one after another (Spark allows one
driver per process), so the notebook must have no cluster running. A configuration the backend refuses (more
executors than this machine has cores, a GPU row without GPUs, over the namespace's quota) is skipped with the
backend's reason, before anything starts.
"""

from __future__ import annotations

import html
import io
import math
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from occam import config
from occam.backends import select_backend
from occam.cluster import list_clusters, start_cluster
from occam.data.dataset import Dataset
from occam.errors import ConfigError
from occam.training import defaults
from occam.training.messages import EpochEnded, RankStarted, StepProfile

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from occam.training.result import FitResult


@dataclass(frozen=True)
class ScalingRow:
    """One configuration's measurements. Times per step are means over the ranks, in seconds."""

    executors: int
    gpu: bool
    samples_per_second: float
    epochs: int
    train_seconds: float
    final_metric: float | None
    seconds_to_target: float | None
    step_seconds: float
    input_seconds: float
    exchange_seconds: float

    @property
    def compute_seconds(self) -> float:
        return max(0.0, self.step_seconds - self.exchange_seconds)


@dataclass
class ScalingResult:
    """What :func:`scaling` measured: ``rows`` (one per configuration that ran), ``skipped`` (each configuration
    not run, with the reason), the ``metric`` and ``target`` used for the time-to-accuracy column."""

    rows: list[ScalingRow]
    skipped: list[tuple[int, bool, str]]
    metric: str
    target: float | None
    batch_size: int
    notes: list[str] = field(default_factory=list)

    def _baseline(self) -> ScalingRow | None:
        return next((r for r in self.rows if r.executors == 1 and not r.gpu), None)

    def table(self) -> pd.DataFrame:
        """One row per configuration: samples/s, speedup over one CPU executor (NaN without that row),
        parallel efficiency (speedup / executors), time to ``target``, and a step's time split into input
        pipeline (alone), gradient exchange and compute, in milliseconds."""
        import pandas as pd

        base = self._baseline()
        records = []
        for row in self.rows:
            speedup = row.samples_per_second / base.samples_per_second if base else math.nan
            records.append(
                {
                    "executors": row.executors,
                    "gpu": row.gpu,
                    "samples/s": round(row.samples_per_second, 1),
                    "speedup": round(speedup, 2),
                    "efficiency": round(speedup / row.executors, 2),
                    f"final {self.metric}": None if row.final_metric is None else round(row.final_metric, 4),
                    "time to target (s)": None if row.seconds_to_target is None else round(row.seconds_to_target, 1),
                    "step (ms)": round(1000 * row.step_seconds, 2),
                    "input (ms)": round(1000 * row.input_seconds, 2),
                    "exchange (ms)": round(1000 * row.exchange_seconds, 2),
                    "compute (ms)": round(1000 * row.compute_seconds, 2),
                }
            )
        return pd.DataFrame.from_records(records)

    def plot(self) -> Figure:
        """Two panels: samples/s against executors (CPU and GPU, with the ideal linear line from one CPU
        executor), and each configuration's step split into compute, exchange and input (alone)."""
        import matplotlib.pyplot as plt

        figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5), layout="constrained")
        plt.close(figure)  # shown once, as the value returned (see FitResult.plot)
        for gpu, label in ((False, "CPU"), (True, "GPU")):
            rows = sorted((r for r in self.rows if r.gpu == gpu), key=lambda r: r.executors)
            if rows:
                left.plot([r.executors for r in rows], [r.samples_per_second for r in rows], marker="o", label=label)
        base = self._baseline()
        if base is not None:
            most = max(r.executors for r in self.rows)
            left.plot([1, most], [base.samples_per_second, most * base.samples_per_second], "--", label="linear")
        left.set_xlabel("executors")
        left.set_ylabel("samples/s")
        left.legend()
        left.grid(alpha=0.3)
        names = [f"{r.executors}{' GPU' if r.gpu else ''}" for r in self.rows]
        compute = [1000 * r.compute_seconds for r in self.rows]
        exchange = [1000 * r.exchange_seconds for r in self.rows]
        right.bar(names, compute, label="compute")
        right.bar(names, exchange, bottom=compute, label="gradient exchange")
        right.plot(names, [1000 * r.input_seconds for r in self.rows], "k^", label="input pipeline (alone)")
        right.set_xlabel("configuration (executors)")
        right.set_ylabel("ms per step")
        right.legend()
        return figure

    def _repr_html_(self) -> str:
        table = self.table().to_html(index=False, escape=True) if self.rows else "<p>no configuration ran</p>"
        skipped = "".join(
            f"<li>{n} executor{'s' if n > 1 else ''}{' with GPUs' if gpu else ''}: {html.escape(reason)}</li>"
            for n, gpu, reason in self.skipped
        )
        notes = "".join(f"<li>{html.escape(note)}</li>" for note in self.notes)
        curves = ""
        if self.rows:
            buffer = io.StringIO()
            self.plot().savefig(buffer, format="svg")
            curves = buffer.getvalue()[buffer.getvalue().index("<svg") :]
        return (
            f"<div><strong>Occam scaling</strong>: batch size {self.batch_size} per rank{table}"
            f"{f'<p>Skipped:</p><ul>{skipped}</ul>' if skipped else ''}{f'<ul>{notes}</ul>' if notes else ''}"
            f"<div>{curves}</div></div>"
        )


def row_from_fit(
    result: FitResult, executors: int, gpu: bool, batch_size: int, metric: str, target: float | None
) -> ScalingRow:
    """A configuration's row from its fit: steady throughput (the first epoch traces the graph and is left
    out when there are more), the metric's last value and when it first reached ``target``."""
    ended = [e for e in result.events if isinstance(e, EpochEnded)]
    steady = ended[1:] or ended
    steps_per_epoch = next((e.steps for e in result.events if isinstance(e, RankStarted)), 0)
    samples_per_epoch = steps_per_epoch * batch_size * executors
    seconds = sum(e.seconds for e in steady)
    values = [e.metrics.get(metric) for e in ended]
    reached, elapsed = None, 0.0
    for epoch, value in zip(ended, values, strict=True):
        elapsed += epoch.seconds
        if reached is None and target is not None and value is not None and value >= target:
            reached = elapsed
    profiles = [e for e in result.events if isinstance(e, StepProfile)]

    def mean(name: str) -> float:
        return sum(getattr(p, name) for p in profiles) / len(profiles) if profiles else math.nan

    return ScalingRow(
        executors=executors,
        gpu=gpu,
        samples_per_second=samples_per_epoch * len(steady) / seconds if seconds else 0.0,
        epochs=len(ended),
        train_seconds=sum(e.seconds for e in ended),
        final_metric=values[-1] if values and values[-1] is not None else None,
        seconds_to_target=reached,
        step_seconds=mean("step_seconds"),
        input_seconds=mean("input_seconds"),
        exchange_seconds=mean("exchange_seconds"),
    )


def _check_choices(name: str, values: Sequence[Any], kind: type) -> None:
    if isinstance(values, str | bytes) or not isinstance(values, Sequence) or not values:
        raise ConfigError(f"{name} must be a non-empty list, e.g. {name}=[1, 2]")
    for value in values:
        whole = isinstance(value, int) and not isinstance(value, bool) and value >= 1
        if not isinstance(value, kind) or (kind is int and not whole):
            raise ConfigError(f"{name}: {value!r} is not a {'whole number >= 1' if kind is int else 'True/False'}")


def scaling(
    model_fn: Callable[[], Any],
    dataset: Dataset,
    *,
    executors: Sequence[int] = (1, 2, 4),
    gpu: Sequence[bool] = (False, True),
    epochs: int = 3,
    batch_size: int = defaults.BATCH_SIZE,
    validation: Dataset | None = None,
    metric: str | None = None,
    target: float | None = None,
    cores: int | None = None,
    memory: str | None = None,
    backend: str | None = None,
    progress: bool = False,
) -> ScalingResult:
    """Train ``model_fn()``'s model on ``dataset`` for ``epochs`` epochs in each configuration of ``executors``
    x ``gpu`` the backend allows, each on a fresh cluster, and return the comparison.

    Args:
        model_fn, dataset, batch_size, validation: as for :meth:`occam.cluster.Cluster.fit` (per-rank batch;
            the learning rate is scaled by the ranks, as fit does by default).
        executors: the cluster sizes to try; ``gpu``: with and/or without one GPU per executor.
        epochs: the fixed budget of every configuration (every epoch is the whole dataset once).
        metric: the metric for the time-to-accuracy column (default ``val_accuracy`` with ``validation``,
            else ``accuracy``); ``target``: the value it must reach (default: no such column filled).
        cores, memory, backend: each executor's size and where they run, as for :func:`occam.start_cluster`.
        progress: show each fit's dashboard.

    Raises :class:`~occam.errors.ConfigError` for bad arguments or when this notebook already runs a cluster
    (stop it first: Spark runs one driver per process). Configurations that do not fit are listed in
    ``skipped`` with the backend's reason; nothing starts for them.
    """
    _check_choices("executors", executors, int)
    _check_choices("gpu", gpu, bool)
    if not isinstance(dataset, Dataset):
        raise ConfigError("dataset must be an occam.Dataset (Dataset.from_numpy / from_dataframe / ...)")
    running = list_clusters()
    if running:
        raise ConfigError(
            f"scaling starts a cluster per configuration, and this notebook runs {running[0].name}: stop it "
            "first (cluster.stop()); Spark runs one driver per process"
        )
    metric = metric or ("val_accuracy" if validation is not None else "accuracy")
    backend_cls = select_backend(config.get("backend", backend))
    runnable, skipped = [], []
    for use_gpu in dict.fromkeys(gpu):
        for n in sorted(set(executors)):
            spec = backend_cls.request(n, gpu=use_gpu, cores=cores, memory=memory)
            try:
                backend_cls(spec).check()
            except ConfigError as exc:
                skipped.append((n, use_gpu, str(exc)))
                continue
            runnable.append((n, use_gpu))

    rows = []
    for n, use_gpu in runnable:
        checkpoints = tempfile.mkdtemp(prefix="occam-scaling-")
        try:
            with start_cluster(n=n, gpu=use_gpu, cores=cores, memory=memory, backend=backend, progress=progress) as c:
                result = c.fit(
                    model_fn,
                    dataset,
                    epochs=epochs,
                    batch_size=batch_size,
                    validation=validation,
                    checkpoint_dir=checkpoints,
                    progress=progress,
                    profile=True,
                )
        finally:
            shutil.rmtree(checkpoints, ignore_errors=True)
        rows.append(row_from_fit(result, n, use_gpu, batch_size, metric, target))
    notes = []
    if not any(r.executors == 1 and not r.gpu for r in rows):
        notes.append("no 1-executor CPU row ran, so speedup and efficiency are not computed")
    return ScalingResult(rows=rows, skipped=skipped, metric=metric, target=target, batch_size=batch_size, notes=notes)
