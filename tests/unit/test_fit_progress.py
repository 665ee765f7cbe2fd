"""The driver's dispatch of the ranks' messages: the progress bar, the epoch lines and ``on_epoch_end``."""

from __future__ import annotations

import queue

from occam.training.messages import BatchProgress, EpochEnded, Message, RankFailed, RankStarted
from occam.training.progress import ProgressFollower


class RecordingBar:
    """Stands in for the tqdm bar: records what the follower shows."""

    def __init__(self) -> None:
        self.n = 0
        self.lines: list[str] = []
        self.postfix = ""

    def update(self, n: int) -> None:
        self.n += n

    def write(self, line: str) -> None:
        self.lines.append(line)

    def set_postfix_str(self, text: str) -> None:
        self.postfix = text


def follower(**overrides) -> ProgressFollower:
    args = {"epochs": 4, "progress": True, "on_epoch_end": None}
    args.update(overrides)
    return ProgressFollower(queue.Queue(), **args)


def ended(epoch: int, loss: float = 0.5) -> EpochEnded:
    return EpochEnded(epoch=epoch, epochs=4, metrics={"loss": loss, "accuracy": 0.75}, seconds=2.0)


def test_an_ended_epoch_moves_the_bar_prints_its_metrics_and_calls_on_epoch_end():
    calls = []
    f, bar = follower(on_epoch_end=lambda epoch, metrics: calls.append((epoch, metrics))), RecordingBar()
    f.handle(bar, BatchProgress(epoch=1, batch=3, steps=10))
    assert bar.postfix == "epoch 1: batch 3/10" and bar.n == 0
    f.handle(bar, ended(1))
    assert bar.n == 1 and bar.postfix == ""
    assert bar.lines == ["epoch 1/4 (2.0 s): loss=0.5000 accuracy=0.7500"]
    assert calls == [(1, {"loss": 0.5, "accuracy": 0.75})]


def test_a_resumed_fit_starts_the_bar_at_the_epochs_already_done():
    f, bar = follower(), RecordingBar()
    f.handle(bar, RankStarted(size=2, initial_epoch=2, steps=10))
    assert bar.n == 2 and bar.lines == ["resuming after epoch 2"]
    fresh = RecordingBar()
    f.handle(fresh, RankStarted(size=2, initial_epoch=0, steps=10))
    assert fresh.n == 0 and fresh.lines == []


def test_without_progress_nothing_is_printed_but_on_epoch_end_is_still_called():
    calls = []
    f, bar = follower(progress=False, on_epoch_end=lambda epoch, metrics: calls.append(epoch)), RecordingBar()
    f.handle(bar, RankStarted(size=2, initial_epoch=1, steps=10))
    f.handle(bar, ended(2))
    assert bar.lines == [] and calls == [2]


def test_a_failing_callback_is_kept_for_later_and_not_called_again():
    calls = []

    def on_epoch_end(epoch, metrics):
        calls.append(epoch)
        raise KeyError("oops")

    f, bar = follower(on_epoch_end=on_epoch_end), RecordingBar()
    f.handle(bar, ended(1))
    f.handle(bar, ended(2))
    assert calls == [1] and isinstance(f.callback_error, KeyError)
    assert bar.n == 2  # training and its progress go on


def test_a_rank_failure_is_kept_for_fit_to_raise_and_not_shown():
    f, bar = follower(), RecordingBar()
    f.handle(bar, RankFailed(rank=1, error="ValueError()", traceback="..."))
    assert bar.n == 0 and bar.lines == []


def test_the_thread_keeps_every_message_in_arrival_order_and_drains_the_queue_when_finished():
    seen = []
    f = follower(progress=False, on_epoch_end=lambda epoch, metrics: seen.append(epoch))
    messages: list[Message] = [
        RankStarted(size=2, initial_epoch=0, steps=10),
        BatchProgress(epoch=1, batch=5, steps=10),
        ended(1),
        ended(2, loss=0.25),
    ]
    f.start()
    for message in messages:
        f.messages.put(message)
    f.finish(timeout=10)
    assert not f.is_alive()
    assert f.events == messages and seen == [1, 2]
