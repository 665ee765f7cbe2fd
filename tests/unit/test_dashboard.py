"""The dashboard's arithmetic (throughput, ETA) and its renderers (text lines, HTML), without a notebook."""

from __future__ import annotations

import io
import math
import time

import pytest

from occam.errors import ConfigError
from occam.training.dashboard import HtmlDashboard, NoDashboard, TextDashboard, choose_dashboard, front_end
from occam.training.dashboard_html import dashboard_html, format_seconds, panels
from occam.training.messages import BatchProgress, EpochEnded, RankFailed, RankStarted, RankStats
from occam.training.monitor import parse_nvidia_smi
from occam.training.snapshot import MAX_BATCH_POINTS, ProgressTracker, estimate_eta


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def tracker_at(clock: Clock, epochs: int = 4) -> ProgressTracker:
    tracker = ProgressTracker(epochs, clock=clock)
    tracker.add(RankStarted(size=2, initial_epoch=0, steps=10))
    return tracker


def test_eta_before_the_first_epoch_ends_comes_from_the_time_per_batch():
    # 4 s for 2 of 10 batches: 8 batches left in this epoch and 10 in each of 3 more, at 2 s each.
    eta = estimate_eta(epochs=4, epochs_done=0, epoch_seconds=(), epoch_elapsed=4.0, batch=2, steps=10)
    assert eta == pytest.approx(2.0 * (8 + 30))
    assert estimate_eta(epochs=4, epochs_done=0, epoch_seconds=(), epoch_elapsed=4.0, batch=0, steps=10) is None


def test_eta_after_an_epoch_comes_from_the_mean_epoch_and_counts_the_epoch_under_way():
    eta = estimate_eta(epochs=4, epochs_done=2, epoch_seconds=(10.0, 14.0), epoch_elapsed=5.0, batch=3, steps=10)
    assert eta == pytest.approx(2 * 12.0 - 5.0)
    # An epoch running longer than the mean does not make the estimate go below the epochs still to start.
    late = estimate_eta(epochs=4, epochs_done=2, epoch_seconds=(10.0,), epoch_elapsed=50.0, batch=9, steps=10)
    assert late == pytest.approx(10.0)
    assert estimate_eta(epochs=4, epochs_done=4, epoch_seconds=(1.0,), epoch_elapsed=0, batch=0, steps=1) == 0.0


def test_the_tracker_folds_messages_into_a_snapshot():
    clock = Clock()
    tracker = tracker_at(clock)
    clock.now += 3.0
    tracker.add(BatchProgress(epoch=1, batch=5, steps=10, metrics={"loss": 2.0, "accuracy": 0.3}))
    tracker.add(RankStats(rank=0, epoch=1, samples_per_second=300.0, resources={"cpu_percent": 99.0}))
    tracker.add(RankStats(rank=1, epoch=1, samples_per_second=200.0, resources={"memory_mb": 700.0}))
    tracker.add(RankStats(rank=0, epoch=1, samples_per_second=320.0, resources={"cpu_percent": 98.0}))
    snap = tracker.snapshot()
    assert (snap.epoch, snap.batch, snap.steps, snap.size, snap.state) == (1, 5, 10, 2, "training")
    assert snap.samples_per_second == 520.0  # each rank's last report, summed
    assert snap.fraction_done == pytest.approx(0.5 / 4)
    assert snap.batch_curves["loss"] == [(0.5, 2.0)]
    assert snap.eta_seconds == pytest.approx(3.0 / 5 * (5 + 30))
    clock.now += 3.0
    tracker.add(EpochEnded(epoch=1, epochs=4, metrics={"loss": 1.5, "val_loss": 1.7}, seconds=6.0))
    snap = tracker.snapshot()
    assert (snap.epoch, snap.epochs_done, snap.batch) == (2, 1, 0)
    assert snap.history == {"loss": [1.5], "val_loss": [1.7]} and snap.history_epochs == (1,)
    assert snap.eta_seconds == pytest.approx(18.0) and snap.elapsed_seconds == pytest.approx(6.0)
    tracker.add(RankFailed(rank=1, error="E", traceback=""))
    tracker.finish()
    assert tracker.snapshot().state == "failed" and tracker.snapshot().eta_seconds is None


def test_a_resumed_fit_counts_the_epochs_already_done():
    tracker = ProgressTracker(5, clock=Clock())
    tracker.add(RankStarted(size=1, initial_epoch=3, steps=10))
    snap = tracker.snapshot()
    assert (snap.epoch, snap.epochs_done, snap.initial_epoch) == (4, 3, 3)
    assert snap.fraction_done == pytest.approx(3 / 5)


def test_a_long_fit_keeps_its_whole_curve_at_a_lower_resolution():
    tracker = tracker_at(Clock(), epochs=1)
    for batch in range(1, 3 * MAX_BATCH_POINTS):
        tracker.add(BatchProgress(epoch=1, batch=batch, steps=3 * MAX_BATCH_POINTS, metrics={"loss": 1.0}))
    points = tracker.snapshot().batch_curves["loss"]
    assert len(points) <= MAX_BATCH_POINTS and points[0][0] < 0.01 and points[-1][0] > 0.99


def test_the_text_dashboard_in_a_log_prints_new_lines_only_and_no_carriage_returns():
    clock, out = Clock(), io.StringIO()
    dashboard = TextDashboard(out, interactive=False, line_seconds=30.0, clock=clock)
    tracker = tracker_at(clock, epochs=2)
    tracker.add(BatchProgress(epoch=1, batch=1, steps=10, metrics={"loss": 2.0}))
    dashboard.update(tracker.snapshot())
    assert out.getvalue() == ""  # not yet 30 s since the start
    clock.now += 31
    tracker.add(RankStats(rank=0, epoch=1, samples_per_second=1234.0, resources={"cpu_percent": 95, "memory_mb": 512}))
    dashboard.update(tracker.snapshot())
    tracker.add(EpochEnded(epoch=1, epochs=2, metrics={"loss": 1.0}, seconds=31.0))
    dashboard.update(tracker.snapshot())
    tracker.add(EpochEnded(epoch=2, epochs=2, metrics={"loss": 0.5}, seconds=29.0))
    tracker.finish()
    dashboard.close(tracker.snapshot())
    text = out.getvalue()
    assert "\r" not in text
    assert text.splitlines() == [
        "epoch 1/2 | batch 1/10 | 1,234 samples/s | CPU 95%/rank | 512 MB | ETA 9 min 49 s | loss=2.0000",
        "epoch 1/2 (31.0 s, 1,234 samples/s, ETA 31 s): loss=1.0000",
        "epoch 2/2 (29.0 s, 1,234 samples/s): loss=0.5000",
    ]


def test_the_text_dashboard_on_a_terminal_redraws_its_status_line_and_keeps_epoch_lines():
    clock, out = Clock(), io.StringIO()
    dashboard = TextDashboard(out, interactive=True, clock=clock)
    tracker = tracker_at(clock, epochs=1)
    for batch in (1, 2):
        tracker.add(BatchProgress(epoch=1, batch=batch, steps=10, metrics={}))
        dashboard.update(tracker.snapshot())
    tracker.add(EpochEnded(epoch=1, epochs=1, metrics={"loss": 0.5}, seconds=1.0))
    dashboard.update(tracker.snapshot())
    text = out.getvalue()
    assert text.count("\r") >= 2 and "batch 2/10" in text
    assert text.endswith("epoch 1/1 (1.0 s): loss=0.5000\n")


def test_the_html_shows_curves_per_metric_the_ranks_and_escapes_names():
    clock = Clock()
    tracker = tracker_at(clock, epochs=3)
    tracker.add(BatchProgress(epoch=1, batch=5, steps=10, metrics={"loss": 2.0, "<b>odd</b>": 1.0}))
    tracker.add(RankStats(rank=1, epoch=1, samples_per_second=50.0, resources={"gpu_percent": 80, "cpu_percent": 5}))
    tracker.add(EpochEnded(epoch=1, epochs=3, metrics={"loss": 1.5, "val_loss": 1.7, "accuracy": 0.5}, seconds=2))
    page = dashboard_html(tracker.snapshot())
    assert page.count("<svg") == 3 and "<b>odd</b>" not in page and "&lt;b&gt;odd&lt;/b&gt;" in page
    assert "GPU %" in page and "<td>1</td><td>50</td>" in page and "epoch 2/3" in page
    assert panels({"val_loss": [1.0], "accuracy": [1.0], "loss": [1.0]}, {}) == ["loss", "accuracy"]


def test_an_empty_or_diverging_curve_still_draws():
    tracker = tracker_at(Clock(), epochs=2)
    tracker.add(EpochEnded(epoch=1, epochs=2, metrics={"loss": math.nan}, seconds=1))
    tracker.add(EpochEnded(epoch=2, epochs=2, metrics={"loss": math.inf}, seconds=1))
    assert "<svg" in dashboard_html(tracker.snapshot())


def test_seconds_read_as_people_write_them():
    assert [format_seconds(s) for s in (None, 4.4, 65, 3725)] == ["?", "4 s", "1 min 05 s", "1 h 02 min"]


def test_nvidia_smi_answers_are_read_and_odd_ones_ignored():
    assert parse_nvidia_smi("87, 1234\n") == {"gpu_percent": 87.0, "gpu_memory_mb": 1234.0}
    assert parse_nvidia_smi("[N/A], 10\n") == {} and parse_nvidia_smi("") == {}


def test_outside_a_kernel_the_dashboard_is_text_and_progress_false_is_none(monkeypatch):
    monkeypatch.delenv("OCCAM_DASHBOARD", raising=False)
    assert front_end() == "text"
    assert isinstance(choose_dashboard(True), TextDashboard)
    assert isinstance(choose_dashboard(False), NoDashboard)
    monkeypatch.setenv("OCCAM_DASHBOARD", "bars")
    with pytest.raises(ConfigError, match="OCCAM_DASHBOARD"):
        choose_dashboard(True)


def test_the_html_dashboard_replaces_its_display(monkeypatch):
    """IPython's ``display`` is replaced by a recorder: no front end runs in a unit test (the real kernel
    test is tests/local/test_dashboard_notebook.py)."""
    pytest.importorskip("IPython")
    import IPython.display

    shown = []

    class Handle:
        def update(self, obj):
            shown.append(obj.data)

    monkeypatch.setattr(IPython.display, "display", lambda obj, display_id: shown.append(obj.data) or Handle())
    dashboard = HtmlDashboard()
    tracker = tracker_at(Clock(), epochs=1)
    tracker.add(EpochEnded(epoch=1, epochs=1, metrics={"loss": 0.5}, seconds=1))
    dashboard.close(tracker.snapshot())
    assert len(shown) == 2 and "epoch 1/1" in shown[-1] and "<svg" in shown[-1]


def test_a_rank_reads_its_own_cpu_and_memory():
    pytest.importorskip("psutil")
    from occam.training.monitor import ProcessProbe

    probe = ProcessProbe()
    sum(i * i for i in range(200_000))  # some CPU to measure
    reading = probe.read()
    assert set(reading) == {"cpu_percent", "memory_mb"} and reading["memory_mb"] > 10


def test_the_gpu_probe_asks_nvidia_smi_about_the_ranks_gpu(tmp_path):
    """A stand-in ``nvidia-smi`` (a shell script: no GPU here) that records its arguments and answers."""
    from occam.training.monitor import GpuProbe

    script = tmp_path / "nvidia-smi"
    script.write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/args\necho "61, 2048"\n')
    script.chmod(0o755)
    probe = GpuProbe(str(script), "3")
    probe.start()
    deadline = time.monotonic() + 10
    while not probe.latest and time.monotonic() < deadline:
        time.sleep(0.05)
    probe.stop()
    probe.join(timeout=10)
    assert probe.latest == {"gpu_percent": 61.0, "gpu_memory_mb": 2048.0} and not probe.is_alive()
    assert "--id=3" in (tmp_path / "args").read_text()
