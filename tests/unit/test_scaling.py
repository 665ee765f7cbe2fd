"""occam.scaling's arithmetic and rendering from fits' events: throughput, speedup, efficiency, time to a
target, a step's split. (The notebook that runs it on a real cluster: tests/local/test_scaling_notebook.py.)"""

from __future__ import annotations

import math

import pytest

from occam.errors import ConfigError
from occam.scaling import ScalingResult, row_from_fit, scaling
from occam.training.messages import EpochEnded, RankStarted, StepProfile
from occam.training.result import FitResult


def fit_result(executors: int, epoch_seconds: list[float], accuracy: list[float], profiles: list[StepProfile]):
    events = [RankStarted(size=executors, initial_epoch=0, steps=100 // executors)]
    events += [
        EpochEnded(epoch=i + 1, epochs=len(epoch_seconds), metrics={"val_accuracy": a}, seconds=s)
        for i, (s, a) in enumerate(zip(epoch_seconds, accuracy, strict=True))
    ]
    return FitResult(
        model=None,
        history={},
        epochs=[],
        ranks=executors,
        seconds=0,
        samples_per_second=0,
        checkpoint=None,
        events=[*events, *profiles],
    )


def test_a_row_leaves_out_the_first_epoch_and_finds_when_the_target_was_reached():
    result = fit_result(
        2,
        [9.0, 4.0, 6.0],
        [0.5, 0.85, 0.95],
        [
            StepProfile(rank=0, step_seconds=0.02, input_seconds=0.004, exchange_seconds=0.006),
            StepProfile(rank=1, step_seconds=0.04, input_seconds=0.006, exchange_seconds=0.010),
        ],
    )
    row = row_from_fit(result, 2, False, batch_size=10, metric="val_accuracy", target=0.8)
    # 50 steps x 10 samples x 2 ranks per epoch; epochs 2 and 3 took 10 s for 2,000 samples.
    assert row.samples_per_second == pytest.approx(200.0)
    assert row.seconds_to_target == pytest.approx(13.0) and row.final_metric == 0.95
    assert (row.step_seconds, row.input_seconds, row.exchange_seconds) == pytest.approx((0.03, 0.005, 0.008))
    assert row.compute_seconds == pytest.approx(0.022)
    never = row_from_fit(result, 2, False, batch_size=10, metric="val_accuracy", target=0.99)
    assert never.seconds_to_target is None


def test_the_table_gives_speedup_and_efficiency_over_one_cpu_executor():
    pytest.importorskip("pandas")
    one = row_from_fit(fit_result(1, [5.0, 5.0], [0.9, 0.9], []), 1, False, 10, "val_accuracy", None)
    two = row_from_fit(fit_result(2, [5.0, 3.125], [0.9, 0.9], []), 2, False, 10, "val_accuracy", None)
    result = ScalingResult(
        rows=[one, two], skipped=[(4, False, "needs 4 cores")], metric="val_accuracy", target=None, batch_size=10
    )
    table = result.table()
    assert list(table["samples/s"]) == [200.0, 320.0]
    assert list(table["speedup"]) == [1.0, 1.6] and list(table["efficiency"]) == [1.0, 0.8]
    assert math.isnan(table["step (ms)"][0])  # no profile sent
    page = result._repr_html_()
    assert "<table" in page and "needs 4 cores" in page and "<svg" in page
    assert len(result.plot().get_axes()) == 2


def test_bad_choices_are_refused_before_anything_starts():
    with pytest.raises(ConfigError, match="executors"):
        scaling(lambda: None, None, executors=[])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="gpu"):
        scaling(lambda: None, None, executors=[1], gpu=["yes"])  # type: ignore[arg-type, list-item]
    with pytest.raises(ConfigError, match="occam.Dataset"):
        scaling(lambda: None, None, executors=[1, 2])  # type: ignore[arg-type]
