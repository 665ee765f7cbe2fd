"""What ``Cluster.fit`` returns."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from occam.training.messages import Message


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

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(k)}</th>" for k in ["epoch", *self.history])
        rows = []
        for i, epoch in enumerate(self.epochs):
            cells = "".join(f"<td>{values[i]:.4f}</td>" for values in self.history.values() if i < len(values))
            rows.append(f"<tr><td>{epoch}</td>{cells}</tr>")
        return (
            f"<div><strong>Occam fit</strong>: {self.ranks} ranks, {self.seconds:.1f} s, "
            f"{self.samples_per_second:.0f} samples/s<table><tr>{head}</tr>{''.join(rows)}</table></div>"
        )
