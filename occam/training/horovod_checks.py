"""Horovod's "was Gloo built?" check, made safe to run in a busy driver.

``horovod.spark.run`` asks ``horovod.common.util.gloo_built`` before it starts the ranks. That check forks the
driver, imports Horovod's TensorFlow extension in the child and reads the answer from a queue with
``get_nowait``. In a driver that already runs TensorFlow, py4j and our event threads, the forked child now and
then dies before it answers, and the launch fails with a bare ``queue.Empty`` that says nothing about Gloo.
Horovod caches the first answer for the life of the process, so asking once here, and asking again when the
child dies, makes its own later call a cache hit.
"""

from __future__ import annotations

import queue
from collections.abc import Callable

from occam.errors import TrainingError

#: How many forked checks may die before we give up (each costs about a second).
CHECK_ATTEMPTS = 4


def ensure_gloo_check_cached(verbose: bool = False, check: Callable[..., object] | None = None) -> None:
    """Ask Horovod whether Gloo is built until its forked check answers, so its own call is a cache hit.

    ``verbose`` must equal the value ``horovod.runner.launch.run_controller`` passes (``verbosity >= 2``):
    Horovod's cache keys on it. ``check`` replaces Horovod's function in tests.
    """
    if check is None:
        from horovod.common.util import gloo_built

        check = gloo_built
    for _ in range(CHECK_ATTEMPTS):
        try:
            answer = check(verbose=verbose)
        except queue.Empty:
            continue  # the forked child died before it answered; Horovod cached nothing, so ask again
        if not answer:
            raise TrainingError(
                "this Horovod was built without Gloo, which Occam's launcher needs: reinstall it with "
                "HOROVOD_WITH_GLOO=1 (the project's lock file pins a build that has it)"
            )
        return
    raise TrainingError(
        f"Horovod's check whether Gloo is built died {CHECK_ATTEMPTS} times in a row (it forks the driver); "
        "the driver process may be short of memory: restart the kernel and try again"
    )
