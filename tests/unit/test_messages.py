"""The ranks' messages on the wire: each kind round-trips through JSON, anything else is refused."""

from __future__ import annotations

import json
import math

import pytest

from occam.training.messages import (
    MAX_ERROR_CHARS,
    MAX_TRACEBACK_CHARS,
    MESSAGE_TYPES,
    BatchProgress,
    EpochEnded,
    MessageError,
    RankFailed,
    RankStarted,
    RankStats,
    StepProfile,
    decode,
    encode,
)

EXAMPLES = [
    RankStarted(size=2, initial_epoch=3, steps=40),
    BatchProgress(epoch=4, batch=12, steps=40, metrics={"loss": 0.5}),
    StepProfile(rank=0, step_seconds=0.02, input_seconds=0.005, exchange_seconds=0.004),
    RankStats(rank=1, epoch=2, samples_per_second=512.5, resources={"cpu_percent": 97.0, "memory_mb": 800.0}),
    EpochEnded(epoch=4, epochs=6, metrics={"loss": 0.25, "val_accuracy": 0.9}, seconds=1.5),
    RankFailed(rank=1, error="ValueError('bad shape')", traceback="Traceback (most recent call last):\n ..."),
]


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: type(m).__name__)
def test_each_message_round_trips_as_a_json_object_with_its_kind(message):
    data = encode(message)
    body = json.loads(data)
    assert body["kind"] == message.kind
    assert decode(data) == message


def test_every_message_type_has_an_example_and_its_own_kind():
    assert {type(m) for m in EXAMPLES} == set(MESSAGE_TYPES.values())
    assert len(MESSAGE_TYPES) == len({cls.kind for cls in MESSAGE_TYPES.values()})


def test_a_diverging_loss_still_arrives():
    message = decode(encode(EpochEnded(epoch=1, epochs=1, metrics={"loss": math.nan, "x": math.inf}, seconds=1.0)))
    assert isinstance(message, EpochEnded)
    assert math.isnan(message.metrics["loss"]) and message.metrics["x"] == math.inf


def test_whole_numbers_are_accepted_where_floats_are_expected():
    message = decode(b'{"kind":"epoch_ended","epoch":1,"epochs":2,"metrics":{"loss":1},"seconds":3}')
    assert message == EpochEnded(epoch=1, epochs=2, metrics={"loss": 1.0}, seconds=3.0)
    assert isinstance(message.seconds, float)


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        (b'{"kind":"pickle","epoch":1}', "unknown message kind 'pickle'"),
        (b'{"epoch":1}', "unknown message kind None"),
        (b'{"kind":"batch_progress","epoch":1,"batch":2,"steps":3,"metrics":{},"extra":4}', "unknown fields ['extra']"),
        (b'{"kind":"batch_progress","epoch":1,"batch":2,"metrics":{}}', "missing fields ['steps']"),
        (b'{"kind":"batch_progress","epoch":1,"batch":"2","steps":3,"metrics":{}}', "batch_progress.batch must be int"),
        (
            b'{"kind":"batch_progress","epoch":true,"batch":2,"steps":3,"metrics":{}}',
            "batch_progress.epoch must be int",
        ),
        (b'{"kind":"batch_progress","epoch":1.5,"batch":2,"steps":3,"metrics":{}}', "batch_progress.epoch must be int"),
        (
            b'{"kind":"epoch_ended","epoch":1,"epochs":2,"metrics":{"loss":"low"},"seconds":3}',
            "epoch_ended.metrics['loss'] must be float",
        ),
        (b'{"kind":"epoch_ended","epoch":1,"epochs":2,"metrics":[],"seconds":3}', "epoch_ended.metrics must be"),
        (
            b'{"kind":"rank_stats","rank":0,"epoch":1,"samples_per_second":1,"resources":{"cpu_percent":"x"}}',
            "rank_stats.resources['cpu_percent'] must be float",
        ),
        (b'{"kind":"rank_failed","rank":0,"error":null,"traceback":""}', "rank_failed.error must be str"),
        (b"[1, 2]", "a message is a JSON object, not list"),
        (b"\x80\x04\x95", "not a JSON message"),
        (b"", "not a JSON message"),
        (b"[" * 200_000 + b"]" * 200_000, "nested too deep"),
    ],
)
def test_anything_but_a_known_message_is_refused(data, complaint):
    with pytest.raises(MessageError) as info:
        decode(data)
    assert complaint in str(info.value)


def test_a_failure_report_keeps_the_error_and_the_end_of_a_long_traceback():
    def deep(n, size):
        if n == 0:
            raise ValueError("x" * size)
        deep(n - 1, size)

    try:
        deep(30, 2 * MAX_ERROR_CHARS)
    except ValueError as exc:
        report = RankFailed.from_exception(3, exc)
    assert report.rank == 3
    assert report.error.startswith("ValueError('xxx") and len(report.error) == MAX_ERROR_CHARS
    assert report.traceback.startswith("Traceback (most recent call last)") and "in deep" in report.traceback
    assert decode(encode(report)) == report

    try:
        deep(30, MAX_TRACEBACK_CHARS)
    except ValueError as exc:
        report = RankFailed.from_exception(3, exc)
    assert report.traceback.startswith("... (traceback cut)\n")
    assert len(report.traceback) <= MAX_TRACEBACK_CHARS + 100
    assert report.traceback.rstrip().endswith("xxx")  # the end says most: the exception itself
    assert len(encode(report)) < 1 << 20


def test_an_exception_with_a_broken_repr_is_still_reported():
    class Odd(Exception):
        def __repr__(self):
            raise RuntimeError("no repr")

    try:
        raise Odd("odd")
    except Odd as exc:
        report = RankFailed.from_exception(0, exc)
    assert report.error == "Odd(<repr failed>)"
    assert "odd" in report.traceback
