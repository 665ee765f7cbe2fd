"""Horovod's forked "was Gloo built?" check: a dead check is asked again, and Horovod's own call is then cached."""

from __future__ import annotations

import queue
import subprocess
import sys
import textwrap

import pytest

from occam.errors import TrainingError
from occam.training.horovod_checks import CHECK_ATTEMPTS, ensure_gloo_check_cached


def flaky_check(deaths: int, answer: object = True):
    calls: list[bool] = []

    def check(verbose: bool = False) -> object:
        calls.append(verbose)
        if len(calls) <= deaths:
            raise queue.Empty()
        return answer

    return check, calls


def test_a_check_whose_child_died_is_asked_again():
    check, calls = flaky_check(deaths=2)
    ensure_gloo_check_cached(verbose=False, check=check)
    assert calls == [False, False, False]


def test_a_check_that_keeps_dying_is_named_not_a_bare_empty_queue():
    check, calls = flaky_check(deaths=CHECK_ATTEMPTS)
    with pytest.raises(TrainingError, match=f"died {CHECK_ATTEMPTS} times in a row"):
        ensure_gloo_check_cached(check=check)
    assert len(calls) == CHECK_ATTEMPTS


def test_a_horovod_without_gloo_says_how_to_reinstall_it():
    check, _ = flaky_check(deaths=0, answer=False)
    with pytest.raises(TrainingError, match="HOROVOD_WITH_GLOO=1"):
        ensure_gloo_check_cached(check=check)


def test_horovods_own_launch_check_is_then_a_cache_hit_with_the_real_horovod():
    """Real Horovod, in a fresh interpreter (its cache lives as long as the process): the first forked check
    is made to die as it does in a busy driver, and the launcher's later call must not fork again."""
    pytest.importorskip("horovod", reason="the check is Horovod's own")
    script = textwrap.dedent(
        """
        import queue
        import horovod.common.util as util
        import horovod.runner.launch as launch
        from occam.training.horovod_checks import ensure_gloo_check_cached

        real = util._check_extension_lambda
        calls = []

        def dies_once(*args, **kwargs):
            calls.append(args[0])
            if len(calls) == 1:
                raise queue.Empty()
            return real(*args, **kwargs)

        util._check_extension_lambda = dies_once
        ensure_gloo_check_cached(verbose=False)
        forks = len(calls)
        # What horovod.runner.launch.run_controller asks when horovod.spark.run has verbose=0.
        assert launch.gloo_built(verbose=False) is True
        assert len(calls) == forks == 2, calls
        print("cached")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "cached", done.stderr[-2000:]
