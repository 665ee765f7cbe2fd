"""What the Horovod ranks tell the driver while ``fit`` runs, and how it travels.

Each message is a frozen dataclass. On the wire it is one JSON object, ``{"kind": ..., <fields>}``;
:func:`decode` accepts only the kinds below with exactly their fields and the right types, so a
message from a rank running other code (or anything that is not a message) is refused rather than
half-read. JSON, not pickle: unpickling runs code, and the driver should not trust bytes that much.

:class:`RankOutcome` is different: rank 0 returns it through Horovod's own result channel (it carries
the trained weights, numpy arrays), not through this one.
"""

from __future__ import annotations

import dataclasses
import json
import traceback
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar

# A rank's error text and traceback are cut to these lengths, so that a failure report always fits in
# one message (see occam.training.events.MAX_MESSAGE_BYTES): the end of a traceback says most.
MAX_ERROR_CHARS = 10_000
MAX_TRACEBACK_CHARS = 200_000


class MessageError(ValueError):
    """Bytes that are not one of the messages below (unknown kind, missing or extra field, wrong type)."""


@dataclass(frozen=True)
class RankStarted:
    """Rank 0 built the model and is about to train: ``size`` ranks, ``steps`` batches per epoch, and
    ``initial_epoch`` epochs already done (more than 0 when resuming from a checkpoint)."""

    kind: ClassVar[str] = "rank_started"
    size: int
    initial_epoch: int
    steps: int


@dataclass(frozen=True)
class BatchProgress:
    """Rank 0 finished ``batch`` of the ``steps`` batches of ``epoch`` (1-based); sent at most once a second.

    ``metrics`` are Keras' running values for the epoch so far (``loss``, ``accuracy``...), rank 0's own (the
    ranks' average arrives with :class:`EpochEnded`): enough to draw the curve within an epoch.
    """

    kind: ClassVar[str] = "batch_progress"
    epoch: int
    batch: int
    steps: int
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class RankStats:
    """Every rank, every few seconds while it trains: its throughput since its last report and what its
    process uses.

    ``resources`` holds what could be measured, by name: ``cpu_percent`` (of one core, so up to 100 times
    the cores the rank uses), ``memory_mb`` (resident), and where a GPU is visible ``gpu_percent`` and
    ``gpu_memory_mb``; a name is absent when it could not be measured.
    """

    kind: ClassVar[str] = "rank_stats"
    rank: int
    epoch: int
    samples_per_second: float
    resources: dict[str, float]


@dataclass(frozen=True)
class StepProfile:
    """A rank's timing of one training step's parts, sent once after training when the fit asked for it
    (:mod:`occam.training.profile` says how each is measured)."""

    kind: ClassVar[str] = "step_profile"
    rank: int
    step_seconds: float
    input_seconds: float
    exchange_seconds: float


@dataclass(frozen=True)
class EpochEnded:
    """Rank 0 finished ``epoch`` (1-based) of ``epochs``: its metrics, averaged over ranks, and its duration."""

    kind: ClassVar[str] = "epoch_ended"
    epoch: int
    epochs: int
    metrics: dict[str, float]
    seconds: float


@dataclass(frozen=True)
class RankFailed:
    """A rank's own exception: its ``repr`` and the rank's traceback, sent before the rank exits."""

    kind: ClassVar[str] = "rank_failed"
    rank: int
    error: str
    traceback: str

    @classmethod
    def from_exception(cls, rank: int, exc: BaseException) -> RankFailed:
        """The report of ``exc`` (being handled now), cut to fit in one message."""
        trace = "".join(traceback.format_exception(exc))
        if len(trace) > MAX_TRACEBACK_CHARS:
            trace = "... (traceback cut)\n" + trace[-MAX_TRACEBACK_CHARS:]
        try:
            error = repr(exc)
        except Exception:  # a broken __repr__ must not hide the exception being reported
            error = f"{type(exc).__name__}(<repr failed>)"
        return cls(rank=rank, error=error[:MAX_ERROR_CHARS], traceback=trace)


Message = RankStarted | BatchProgress | RankStats | EpochEnded | StepProfile | RankFailed

MESSAGE_TYPES: dict[str, type[Message]] = {
    cls.kind: cls for cls in (RankStarted, BatchProgress, RankStats, EpochEnded, StepProfile, RankFailed)
}


@dataclass(frozen=True)
class RankOutcome:
    """What rank 0 returns when training finished: the trained weights and how training went."""

    weights: list[Any]
    history: dict[str, list[float]]
    initial_epoch: int
    seconds: float
    samples_per_epoch: int
    checkpoint: str | None
    #: The trained model's input shape(s), so that the driver can build a model that ``model_fn`` left unbuilt
    #: (a ``Sequential`` without an ``Input`` layer, a subclassed model) before it takes the weights.
    input_shape: Any = None


def encode(message: Message) -> bytes:
    """``message`` as UTF-8 JSON with its ``kind``. Metrics may be NaN or infinite (a diverging loss):
    those are written as JSON's common ``NaN``/``Infinity`` extension, which :func:`decode` reads."""
    body = {"kind": message.kind, **dataclasses.asdict(message)}
    return json.dumps(body, separators=(",", ":")).encode()


def decode(data: bytes) -> Message:
    """The message ``data`` holds; raises :class:`MessageError` for anything else."""
    try:
        body = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MessageError(f"not a JSON message: {exc}") from None
    except RecursionError:
        raise MessageError("not a message: JSON nested too deep") from None
    if not isinstance(body, dict):
        raise MessageError(f"a message is a JSON object, not {type(body).__name__}")
    kind = body.pop("kind", None)
    cls = MESSAGE_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise MessageError(f"unknown message kind {kind!r} (known: {', '.join(MESSAGE_TYPES)})")
    hints = typing.get_type_hints(cls)
    expected = {f.name for f in dataclasses.fields(cls)}
    if set(body) != expected:
        missing, extra = sorted(expected - set(body)), sorted(set(body) - expected)
        raise MessageError(f"{kind} message: missing fields {missing}, unknown fields {extra}")
    values = {name: _checked(f"{kind}.{name}", body[name], hints[name]) for name in expected}
    return cls(**values)


def _checked(where: str, value: Any, expected: Any) -> Any:
    """``value`` if it is of the ``expected`` type (the few types messages use), ints widened to float."""
    if expected is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if expected is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if expected is str and isinstance(value, str):
        return value
    if typing.get_origin(expected) is dict and isinstance(value, dict):
        _, value_type = typing.get_args(expected)
        return {str(k): _checked(f"{where}[{k!r}]", v, value_type) for k, v in value.items()}
    raise MessageError(f"{where} must be {getattr(expected, '__name__', expected)}, not {value!r:.100}")
