"""What the model store records next to each published model: ``metadata.json``, one :class:`ModelMetadata`.

Pure data: importing this module loads neither TensorFlow nor Spark, so the serving process, ``occam.models.list``
and the store's tests read metadata without them.
"""

from __future__ import annotations

import dataclasses
import html
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from occam.errors import ModelError

#: Written into every metadata.json; a later Occam that changes the layout bumps it and still reads this one.
FORMAT_VERSION = 1

#: ``share`` value that makes a model readable by everyone who can read the models root (the course).
SHARE_COURSE = "course"


@dataclass(frozen=True)
class ModelMetadata:
    """One published version of a model, as ``metadata.json`` holds it.

    ``input_shape`` is the model's first input without the batch dimension (``[8, 8, 1]``; ``None`` for a
    dimension of any size) and ``input_dtype`` its dtype name (``"float32"``). ``labels`` name the output
    classes in order, when the publisher gave them. ``metrics`` are the last epoch's (``loss``, ``accuracy``,
    ``val_loss``...), empty for a model published without a fit's result. ``dataset_key`` is the content key of
    the dataset it was trained on (``Dataset.key``), ``epochs`` and ``ranks`` how it was trained. ``share`` is
    ``None`` (private), ``"course"`` or the user names it is shared with. ``created_at`` is UTC, ISO 8601.
    """

    name: str
    owner: str
    version: int
    input_shape: list[int | None]
    input_dtype: str
    labels: list[str] | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    dataset_key: str | None = None
    epochs: int | None = None
    ranks: int | None = None
    occam_version: str = ""
    tensorflow_version: str = ""
    created_at: str = ""
    created_by: str = ""
    description: str = ""
    share: str | list[str] | None = None

    @property
    def ref(self) -> str:
        """The full reference of this version, ``owner/name:version``: what ``load`` and ``serve`` take."""
        return f"{self.owner}/{self.name}:{self.version}"

    @property
    def shared(self) -> bool:
        return bool(self.share)

    def readable_by(self, user: str) -> bool:
        """Whether ``user`` may see this version in ``list``: its owner, the course, or a user it names."""
        if user == self.owner or self.share == SHARE_COURSE:
            return True
        return isinstance(self.share, list) and user in self.share

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT_VERSION, **dataclasses.asdict(self)}, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, *, source: str = "metadata.json") -> ModelMetadata:
        """Parse ``metadata.json``; fields a later Occam added are ignored, a missing required one is an error."""
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelError(f"{source} is not valid JSON ({exc}); remove that version and publish it again") from None
        if not isinstance(raw, dict):
            raise ModelError(f"{source} holds {type(raw).__name__}, not a metadata object; publish the model again")
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in raw.items() if k in known}
        try:
            return cls(**values)
        except TypeError as exc:
            raise ModelError(f"{source} lacks a field ({exc}); remove that version and publish it again") from None


def share_value(share: object) -> str | list[str] | None:
    """Check and normalise ``publish(..., share=...)``: ``None``, ``"course"``, or a list of user names."""
    if share is None or share == SHARE_COURSE:
        return share  # type: ignore[return-value]
    if isinstance(share, str) or not isinstance(share, Iterable):
        raise ModelError(
            f"share={share!r} is not understood: give share='course' (everyone in the course may read it), "
            "a list of user names (share=['bob']), or leave it out (private)"
        )
    users = list(share)
    if not users or not all(isinstance(u, str) and u.strip() for u in users):
        raise ModelError(f"share={share!r} must name at least one user, e.g. share=['bob']")
    return sorted(set(users))


class ModelList(list[ModelMetadata]):
    """What ``occam.models.list()`` returns: a list of :class:`ModelMetadata`, shown as a table in a notebook."""

    COLUMNS: Sequence[str] = ("ref", "input_shape", "labels", "metrics", "epochs", "share", "created_at", "description")

    def _cell(self, row: ModelMetadata, column: str) -> str:
        value: Any = getattr(row, column)
        if column == "metrics":
            value = ", ".join(f"{k}={v:.4g}" for k, v in value.items())
        elif column == "labels" and value:
            value = ", ".join(value[:10]) + (f" (+{len(value) - 10})" if len(value) > 10 else "")
        elif column == "share":
            value = "private" if not value else value if isinstance(value, str) else ", ".join(value)
        elif value is None:
            value = ""
        return html.escape(str(value))

    def _repr_html_(self) -> str:
        if not self:
            return "<div><strong>No models</strong>: publish one with occam.models.publish(result, name)</div>"
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.COLUMNS)
        rows = "".join(
            "<tr>" + "".join(f"<td>{self._cell(row, c)}</td>" for c in self.COLUMNS) + "</tr>" for row in self
        )
        return f"<table><tr>{head}</tr>{rows}</table>"

    def to_pandas(self) -> Any:
        """The rows as a pandas DataFrame, one column per metadata field."""
        import pandas as pd

        return pd.DataFrame([dataclasses.asdict(m) | {"ref": m.ref} for m in self])
