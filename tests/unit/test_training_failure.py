"""What a user reads when ``cluster.fit`` fails: the cause first, then the checkpoint to resume from."""

from __future__ import annotations

from occam.training.fit import failure_message, only_peers_lost
from occam.training.messages import RankFailed


def report(rank: int, error: str) -> RankFailed:
    return RankFailed(rank=rank, error=error, traceback=f"Traceback of {rank}\n  {error}")


def test_a_ranks_own_error_comes_first_with_its_traceback_and_the_checkpoint():
    text = failure_message(
        2, [report(1, "ValueError: bad shape"), report(0, "UnknownError: peer")], None, [], "/ck/epoch-2", "/ck"
    )
    assert text.startswith("rank 1 of 2 failed: ValueError: bad shape")
    assert "The last checkpoint is /ck/epoch-2: fit(..., checkpoint_dir='/ck', resume=True)" in text
    assert "rank 0 failed after it: UnknownError: peer" in text
    assert text.endswith("--- traceback of rank 1 ---\nTraceback of 1\n  ValueError: bad shape")


def test_a_lost_executor_is_named_as_the_cause_not_the_rank_that_saw_its_peer_go():
    text = failure_message(2, [report(0, "UnknownError()")], RuntimeError("job failed"), ["2"], "/ck/epoch-1", "/ck")
    first_line = text.splitlines()[0]
    assert first_line.startswith("executor 2 was lost during training"), first_line
    assert "1 of the 2 Horovod ranks left the job" in first_line
    assert "resume=True" in text and "rank 0 then failed: UnknownError()" in text
    assert "rank 0 of 2 failed" not in text


def test_several_lost_executors_and_no_checkpoint_yet():
    text = failure_message(4, [], RuntimeError("x"), ["1", "3"], None, "/ck")
    assert text.startswith("executors 1, 3 were lost during training")
    assert "No epoch finished, so there is no checkpoint to resume from." in text


def test_a_failure_nobody_reported_says_where_to_look():
    text = failure_message(2, [], RuntimeError("boom"), [], None, "/ck")
    assert text.startswith("training stopped: RuntimeError('boom')")
    assert "executor logs in the Spark UI" in text


def shut_down(rank: int) -> RankFailed:
    return RankFailed(
        rank=rank,
        error="UnknownError()",
        traceback="Traceback ...\nHorovod has been shut down. This was caused by an exception on one of the ranks",
    )


def test_fit_waits_for_the_lost_executor_only_when_the_ranks_saw_nothing_but_a_peer_go():
    assert only_peers_lost(2, [shut_down(0)])  # rank 1 never reported: its executor went away
    assert not only_peers_lost(2, [report(1, "ValueError: bad shape"), shut_down(0)])  # the rank's own error
    assert not only_peers_lost(2, [shut_down(0), shut_down(1)])  # every rank reported: nobody was lost
    assert not only_peers_lost(2, [])  # nobody reported (e.g. the ranks never started): nothing to wait for
