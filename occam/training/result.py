"""What ``Cluster.fit`` returns."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any


@dataclass
class FitResult:
    """The trained model (compiled as ``model_fn`` compiled it) and how training went.

    ``history`` maps each metric (``loss``, ``accuracy``, ``val_loss``, ...) to one value per epoch run,
    averaged over ranks. ``checkpoint`` is the last checkpoint written; ``fit(..., resume=True)`` goes on
    from it.
    """

    model: Any
    history: dict[str, list[float]]
    epochs: list[int]
    ranks: int
    seconds: float
    samples_per_second: float
    checkpoint: str | None
    events: list[dict[str, Any]] = field(default_factory=list, repr=False)

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
