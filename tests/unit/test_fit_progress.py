"""The driver's dispatch of the ranks' messages: the dashboard's updates, the epoch lines and ``on_epoch_end``."""

from __future__ import annotations

import io
import queue

from occam.training.dashboard import TextDashboard
from occam.training.messages import BatchProgress, EpochEnded, Message, RankFailed, RankStarted, RankStats
from occam.training.progress import ProgressFollower
from occam.training.snapshot import ProgressSnapshot


class RecordingDashboard:
    """Stands in for a notebook display: records every snapshot it is given."""

    def __init__(self) -> None:
        self.snapshots: list[ProgressSnapshot] = []
        self.closed: ProgressSnapshot | None = None

    def update(self, snapshot: ProgressSnapshot) -> None:
        self.snapshots.append(snapshot)

    def close(self, snapshot: ProgressSnapshot) -> None:
        self.closed = snapshot


def follower(**overrides) -> ProgressFollower:
    args = {"epochs": 4, "progress": True, "on_epoch_end": None, "dashboard": RecordingDashboard()}
    args.update(overrides)
    return ProgressFollower(queue.Queue(), **args)


def ended(epoch: int, loss: float = 0.5) -> EpochEnded:
    return EpochEnded(epoch=epoch, epochs=4, metrics={"loss": loss, "accuracy": 0.75}, seconds=2.0)


def test_an_ended_epoch_redraws_at_once_and_calls_on_epoch_end():
    calls = []
    f = follower(on_epoch_end=lambda epoch, metrics: calls.append((epoch, metrics)))
    f.handle(RankStarted(size=2, initial_epoch=0, steps=10))
    f.handle(ended(1))
    snapshots = f.dashboard.snapshots
    assert len(snapshots) == 2 and snapshots[-1].epochs_done == 1 and snapshots[-1].history["loss"] == [0.5]
    assert calls == [(1, {"loss": 0.5, "accuracy": 0.75})]


def test_within_an_epoch_the_dashboard_is_redrawn_at_most_every_update_seconds():
    f = follower(update_seconds=3600.0)
    f.handle(RankStarted(size=2, initial_epoch=0, steps=10))
    for batch in range(1, 6):
        f.handle(BatchProgress(epoch=1, batch=batch, steps=10, metrics={"loss": 1.0 / batch}))
        f.handle(RankStats(rank=0, epoch=1, samples_per_second=100.0, resources={}))
    assert len(f.dashboard.snapshots) == 1  # the start only
    eager = follower(update_seconds=0.0)
    eager.handle(BatchProgress(epoch=1, batch=1, steps=10, metrics={"loss": 1.0}))
    eager.handle(BatchProgress(epoch=1, batch=2, steps=10, metrics={"loss": 0.9}))
    assert [s.batch for s in eager.dashboard.snapshots] == [1, 2]


def test_without_progress_nothing_is_printed_but_on_epoch_end_is_still_called(capsys):
    calls = []
    f = ProgressFollower(
        queue.Queue(), epochs=4, progress=False, on_epoch_end=lambda epoch, metrics: calls.append(epoch)
    )
    f.handle(RankStarted(size=2, initial_epoch=1, steps=10))
    f.handle(ended(2))
    f.finish(timeout=1)
    assert calls == [2] and capsys.readouterr().out == ""


def test_a_failing_callback_is_kept_for_later_and_not_called_again():
    calls = []

    def on_epoch_end(epoch, metrics):
        calls.append(epoch)
        raise KeyError("oops")

    f = follower(on_epoch_end=on_epoch_end)
    f.handle(ended(1))
    f.handle(ended(2))
    assert calls == [1] and isinstance(f.callback_error, KeyError)
    assert f.dashboard.snapshots[-1].epochs_done == 2  # training and its progress go on


def test_a_failing_display_is_turned_off_and_training_goes_on(capsys):
    class Broken(RecordingDashboard):
        def update(self, snapshot):
            raise RuntimeError("no front end")

    f = follower(dashboard=Broken())
    f.handle(ended(1))
    f.handle(ended(2))
    assert f.updates == 1 and "progress display failed" in capsys.readouterr().out


def test_a_rank_failure_is_kept_for_fit_to_raise_and_shown_as_failed():
    f = follower()
    f.handle(RankFailed(rank=1, error="ValueError()", traceback="..."))
    f.finish(timeout=1)
    assert f.dashboard.closed is not None and f.dashboard.closed.state == "failed"


def test_the_text_dashboard_prints_the_resumed_epochs_and_one_line_per_epoch():
    out = io.StringIO()
    f = follower(dashboard=TextDashboard(out, interactive=False))
    f.handle(RankStarted(size=2, initial_epoch=2, steps=10))
    f.handle(ended(3))
    f.handle(ended(4, loss=0.25))
    f.finish(timeout=1)
    lines = out.getvalue().splitlines()
    assert lines[0] == "resuming after epoch 2"
    assert lines[1].startswith("epoch 3/4 (2.0 s, ETA ") and lines[1].endswith("loss=0.5000 accuracy=0.7500")
    assert lines[2] == "epoch 4/4 (2.0 s): loss=0.2500 accuracy=0.7500"
    assert len(lines) == 3


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
    assert f.dashboard.closed is not None and f.dashboard.closed.state == "stopped"  # 2 of 4 epochs
