"""What ``Cluster.fit`` returns."""

from __future__ import annotations

import html
import io
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from occam.training.messages import Message

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: The metrics ``plot`` draws, one panel each (loss first), with their ``val_`` twins in the same panel.
MAX_PLOT_PANELS = 4


def metric_panels(history: dict[str, list[float]]) -> list[str]:
    """The metric names to draw, one panel each: ``loss`` first, each ``val_x`` drawn with ``x``."""
    names = list(dict.fromkeys(n[4:] if n.startswith("val_") else n for n in history))
    return sorted(names, key=lambda n: (n != "loss", names.index(n)))[:MAX_PLOT_PANELS]


@dataclass
class FitResult:
    """The trained model (compiled as ``model_fn`` compiled it) and how training went.

    ``history`` maps each metric (``loss``, ``accuracy``, ``val_loss``, ...) to one value per epoch run,
    averaged over ranks. ``epochs`` are the epochs this fit ran (1-based; after a resume, the later ones),
    ``seconds`` rank 0's training time and ``samples_per_second`` its throughput over all ranks.
    ``checkpoint`` is the last checkpoint written; ``fit(..., resume=True)`` goes on from it.
    ``dataset_key`` is the training dataset's content key (``Dataset.key``): what ``occam.models.publish`` records.

    ``events`` are the messages the ranks sent while training, in arrival order, as the dataclasses of
    :mod:`occam.training.messages`: :class:`~occam.training.messages.RankStarted`,
    :class:`~occam.training.messages.BatchProgress` (about once a second),
    :class:`~occam.training.messages.EpochEnded` (per epoch, with its metrics and duration) and
    :class:`~occam.training.messages.RankFailed`.
    """

    model: Any
    history: dict[str, list[float]]
    epochs: list[int]
    ranks: int
    seconds: float
    samples_per_second: float
    checkpoint: str | None
    events: list[Message] = field(default_factory=list, repr=False)
    dataset_key: str | None = None

    def plot(self) -> Figure:
        """The training curves, a matplotlib figure: one panel per metric (loss first), train and validation
        per epoch. A notebook shows it when a cell ends with ``result.plot()``; ``figure.savefig(path)``
        writes it to a file."""
        import matplotlib.pyplot as plt

        names = metric_panels(self.history)
        figure = plt.figure(figsize=(4.0 * max(len(names), 1), 3.0), layout="constrained")
        # Closed at once: pyplot keeps no reference, and a notebook shows the returned figure once, not a
        # second time when the cell ends. (pyplot, not a bare Figure: importing it is what makes a notebook
        # kernel display figures.)
        plt.close(figure)
        axes = figure.subplots(1, max(len(names), 1), squeeze=False)[0]
        for ax, name in zip(axes, names, strict=False):
            for key, label in ((name, "train"), (f"val_{name}", "validation")):
                values = self.history.get(key)
                if values:
                    ax.plot(self.epochs[: len(values)], values, marker="o", label=label)
            ax.set_title(name)
            ax.set_xlabel("epoch")
            ax.grid(alpha=0.3)
            ax.legend()
        if not names:
            axes[0].set_title("no metrics recorded")
        figure.suptitle(f"Occam fit: {self.ranks} ranks, {self.samples_per_second:.0f} samples/s")
        return figure

    def _svg(self) -> str:
        """:meth:`plot` as inline SVG (no ``<?xml`` prologue, so it can sit in HTML)."""
        buffer = io.StringIO()
        self.plot().savefig(buffer, format="svg")
        text = buffer.getvalue()
        return text[text.index("<svg") :]

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(k)}</th>" for k in ["epoch", *self.history])
        rows = []
        for i, epoch in enumerate(self.epochs):
            cells = "".join(f"<td>{_cell(values[i])}</td>" for values in self.history.values() if i < len(values))
            rows.append(f"<tr><td>{epoch}</td>{cells}</tr>")
        try:
            curves = self._svg() if self.history and self.epochs else ""
        except ImportError:  # no matplotlib: the table alone
            curves = ""
        return (
            f"<div><strong>Occam fit</strong>: {self.ranks} ranks, {self.seconds:.1f} s, "
            f"{self.samples_per_second:.0f} samples/s<div>{curves}</div>"
            f"<table><tr>{head}</tr>{''.join(rows)}</table></div>"
        )


def _cell(value: float) -> str:
    return f"{value:.4f}" if math.isfinite(value) else html.escape(str(value))
