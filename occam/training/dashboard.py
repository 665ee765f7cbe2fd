"""The live view of a running ``fit``: renderers fed with :class:`~occam.training.snapshot.ProgressSnapshot`.

The driver's progress thread calls ``dashboard.update(snapshot)`` (at most every ``UPDATE_SECONDS``, and at
every epoch's end) and ``dashboard.close(snapshot)`` once training is over; a renderer only draws. Which
renderer: :func:`choose_dashboard`, from where the code runs and the ``dashboard`` setting
(``OCCAM_DASHBOARD``):

- ``widgets``: a Jupyter widget (ipywidgets) updated in place, in a notebook kernel with comm support;
- ``html``: an HTML display updated in place by its ``display_id``, where widgets are missing;
- ``text``: lines on stdout; on a terminal the status line is redrawn, elsewhere (a batch log, CI) every
  line is a new line, printed at each epoch's end and at most every ``TEXT_LINE_SECONDS`` within one.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, Protocol, TextIO

from occam import config
from occam.errors import ConfigError
from occam.training.dashboard_html import dashboard_html, format_seconds
from occam.training.snapshot import ProgressSnapshot

#: How often the dashboard is redrawn within an epoch.
UPDATE_SECONDS = 2.0
#: How often a non-interactive run prints a line within an epoch (a log should stay readable).
TEXT_LINE_SECONDS = 30.0
KINDS = ("auto", "widgets", "html", "text")


class Dashboard(Protocol):
    """What the progress thread draws on."""

    def update(self, snapshot: ProgressSnapshot) -> None: ...

    def close(self, snapshot: ProgressSnapshot) -> None: ...


class NoDashboard:
    """``progress=False``."""

    def update(self, snapshot: ProgressSnapshot) -> None:
        pass

    def close(self, snapshot: ProgressSnapshot) -> None:
        pass


def metrics_text(metrics: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.4f}" for k, v in metrics.items())


def epoch_line(snapshot: ProgressSnapshot) -> str:
    """``epoch 2/4 (3.1 s, 1,200 samples/s, ETA 6 s): loss=0.5000 accuracy=0.7500`` for the last ended epoch."""
    metrics = {name: values[-1] for name, values in snapshot.history.items() if values}
    seconds = snapshot.epoch_seconds[-1] if snapshot.epoch_seconds else 0.0
    rate = f", {snapshot.samples_per_second:,.0f} samples/s" if snapshot.ranks else ""
    eta = f", ETA {format_seconds(snapshot.eta_seconds)}" if snapshot.epochs_done < snapshot.epochs else ""
    return f"epoch {snapshot.epochs_done}/{snapshot.epochs} ({seconds:.1f} s{rate}{eta}): {metrics_text(metrics)}"


def status_line(snapshot: ProgressSnapshot) -> str:
    """One line on the epoch under way: batches, throughput, ETA, the ranks' CPU and memory."""
    parts = [f"epoch {snapshot.epoch}/{snapshot.epochs}"]
    if snapshot.steps:
        parts.append(f"batch {snapshot.batch}/{snapshot.steps}")
    if snapshot.ranks:
        parts.append(f"{snapshot.samples_per_second:,.0f} samples/s")
        cpu = [v.resources["cpu_percent"] for v in snapshot.ranks.values() if "cpu_percent" in v.resources]
        memory = [v.resources["memory_mb"] for v in snapshot.ranks.values() if "memory_mb" in v.resources]
        gpu = [v.resources["gpu_percent"] for v in snapshot.ranks.values() if "gpu_percent" in v.resources]
        if cpu:
            parts.append(f"CPU {sum(cpu) / len(cpu):.0f}%/rank")
        if memory:
            parts.append(f"{sum(memory):,.0f} MB")
        if gpu:
            parts.append(f"GPU {sum(gpu) / len(gpu):.0f}%")
    parts.append(f"ETA {format_seconds(snapshot.eta_seconds)}")
    running = {k: v[-1][1] for k, v in snapshot.batch_curves.items() if v}
    return " | ".join(parts) + (f" | {metrics_text(running)}" if running else "")


class TextDashboard:
    """Lines on ``stream``: one per ended epoch, and the epoch under way either redrawn in place (a terminal)
    or as a new line every ``line_seconds`` (anything else: no carriage returns in a log)."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        interactive: bool | None = None,
        line_seconds: float = TEXT_LINE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream or sys.stdout
        self.interactive = _isatty(self.stream) if interactive is None else interactive
        self.line_seconds, self.clock = line_seconds, clock
        self.epochs_printed = 0
        self.last_line = clock()
        self.resumed_printed = False
        self._redrawn = 0  # the width of the status line on screen, to blank it

    def update(self, snapshot: ProgressSnapshot) -> None:
        if snapshot.initial_epoch and not self.resumed_printed:
            self.resumed_printed = True
            self.epochs_printed = snapshot.initial_epoch
            self._print(f"resuming after epoch {snapshot.initial_epoch}")
        if snapshot.epochs_done > self.epochs_printed:
            self.epochs_printed = snapshot.epochs_done
            self._print(epoch_line(snapshot))
            self.last_line = self.clock()
        elif snapshot.state == "training":
            line = status_line(snapshot)
            if self.interactive:
                self.stream.write("\r" + line.ljust(self._redrawn))
                self.stream.flush()
                self._redrawn = len(line)
            elif self.clock() - self.last_line >= self.line_seconds:
                self.last_line = self.clock()
                self._print(line)

    def close(self, snapshot: ProgressSnapshot) -> None:
        self.update(snapshot)
        if self._redrawn:
            self._print("")

    def _print(self, line: str) -> None:
        if self._redrawn:
            self.stream.write("\r" + " " * self._redrawn + "\r")
            self._redrawn = 0
        self.stream.write(line + "\n")
        self.stream.flush()


class HtmlDashboard:
    """An HTML display in the notebook, replaced in place (``display_id``) at each update."""

    def __init__(self) -> None:
        from IPython.display import HTML, display

        self._html = HTML
        self.handle: Any = display(HTML(dashboard_html(ProgressSnapshot(epochs=0))), display_id=True)

    def update(self, snapshot: ProgressSnapshot) -> None:
        self.handle.update(self._html(dashboard_html(snapshot)))

    def close(self, snapshot: ProgressSnapshot) -> None:
        self.update(snapshot)


class WidgetDashboard:
    """A Jupyter widget (``ipywidgets.HTML``) whose value is replaced at each update: the front end redraws
    it without a new output, and the notebook keeps its last state."""

    def __init__(self) -> None:
        import ipywidgets
        from IPython.display import display

        self.widget = ipywidgets.HTML(value=dashboard_html(ProgressSnapshot(epochs=0)))
        display(self.widget)

    def update(self, snapshot: ProgressSnapshot) -> None:
        self.widget.value = dashboard_html(snapshot)

    def close(self, snapshot: ProgressSnapshot) -> None:
        self.update(snapshot)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def front_end() -> str:
    """``widgets`` in a Jupyter kernel with comm support and ipywidgets, ``html`` in another IPython kernel,
    ``text`` anywhere else (a script, a terminal IPython, a batch job)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return "text"
    shell = get_ipython()
    kernel = getattr(shell, "kernel", None)
    if kernel is None:
        return "text"
    try:
        import comm
        import ipywidgets  # noqa: F401 - only whether it is there
    except ImportError:
        return "html"
    return "widgets" if hasattr(comm, "create_comm") else "html"


def choose_dashboard(progress: bool, kind: str | None = None) -> Dashboard:
    """The dashboard for ``progress`` (``False``: none) and ``kind`` (default: the ``dashboard`` setting,
    ``auto`` picks by :func:`front_end`)."""
    kind = config.get("dashboard", kind)
    if kind not in KINDS:
        raise ConfigError(f"dashboard={kind!r} is not one of {', '.join(KINDS)} (set by OCCAM_DASHBOARD)")
    if not progress:
        return NoDashboard()
    if kind == "auto":
        kind = front_end()
    if kind == "widgets":
        return WidgetDashboard()
    if kind == "html":
        return HtmlDashboard()
    return TextDashboard()
