"""The idle watcher's decisions, on a clock the test moves (its real thread is exercised at the end)."""

from __future__ import annotations

import threading
from collections.abc import Hashable

import pytest

from occam.idle import IdleWatcher


class Cluster:
    """What the watcher looks at: whether a job runs, and the newest job id."""

    def __init__(self) -> None:
        self.running = False
        self.newest = -1
        self.released = 0
        self.now = 0.0

    def activity(self) -> tuple[bool, Hashable]:
        return self.running, self.newest

    def release(self) -> None:
        self.released += 1


def _watcher(cluster: Cluster, limit: float = 60) -> IdleWatcher:
    return IdleWatcher(limit, cluster.activity, cluster.release, clock=lambda: cluster.now)


def test_a_cluster_idle_for_the_limit_is_released_once() -> None:
    cluster = Cluster()
    watcher = _watcher(cluster)
    assert watcher.check() is False  # the first look notes the start
    cluster.now = 59
    assert watcher.check() is False and cluster.released == 0
    cluster.now = 60
    assert watcher.check() is True and cluster.released == 1
    cluster.now = 500
    assert watcher.check() is True and cluster.released == 1


def test_a_running_job_a_finished_job_and_a_fit_each_restart_the_clock() -> None:
    cluster = Cluster()
    watcher = _watcher(cluster)
    watcher.check()
    cluster.now, cluster.running = 50, True
    watcher.check()
    cluster.now, cluster.running = 100, False  # still running at 50: idle since then
    assert watcher.check() is False and watcher.idle_seconds() == 50
    cluster.now, cluster.newest = 105, 7  # a short job came and went between two looks
    watcher.check()
    cluster.now = 164
    assert watcher.check() is False
    with watcher.busy():  # a fit between its jobs
        cluster.now = 1000
        assert watcher.check() is False
    cluster.now = 1059
    assert watcher.check() is False and cluster.released == 0
    cluster.now = 1060
    assert watcher.check() is True


def test_a_failing_look_is_no_activity() -> None:
    cluster = Cluster()

    def broken() -> tuple[bool, Hashable]:
        raise RuntimeError("the SparkContext is stopping")

    watcher = IdleWatcher(10, broken, cluster.release, clock=lambda: cluster.now)
    cluster.now = 10
    assert watcher.check() is True and cluster.released == 1


def test_the_thread_releases_and_ends_and_stop_ends_it_without_releasing() -> None:
    cluster = Cluster()
    done = threading.Event()

    def release() -> None:
        cluster.release()
        done.set()

    watcher = IdleWatcher(0.2, cluster.activity, release, poll=0.02).start()
    assert done.wait(5) and cluster.released == 1
    watcher.stop()
    quiet = IdleWatcher(0.2, cluster.activity, release, poll=0.02).start()
    quiet.stop()
    assert not quiet._thread.is_alive() and cluster.released == 1


def test_a_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="above 0"):
        IdleWatcher(0, Cluster().activity, Cluster().release)
