"""The reaper with real processes: it must clean up whether its parent stops cleanly or is SIGKILLed."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil

PARENT = textwrap.dedent(
    """
    import json, subprocess, sys, tempfile, time
    import psutil
    from occam.reaper import Reaper
    work = tempfile.mkdtemp(prefix="occam-reaper-test-")
    reaper = Reaper()
    reaper.remove_dir_on_exit(work)
    # A stand-in for the driver JVM with a child of its own (an executor).
    jvm = subprocess.Popen([sys.executable, "-c",
        "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); time.sleep(600)"])
    reaper.watch_pid(jvm.pid)
    deadline = time.monotonic() + 60
    while not psutil.Process(jvm.pid).children() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1)  # let the reaper see the child too
    tree = [psutil.Process(jvm.pid), *psutil.Process(jvm.pid).children()]
    procs = [[p.pid, p.create_time()] for p in tree]
    forked = None
    if sys.argv[1] == "fork":
        # A child forked by the kernel (a notebook's multiprocessing) inherits the reaper's pipe and keeps it open.
        import os
        forked = os.fork()
        if forked == 0:
            time.sleep(600)
            os._exit(0)
    print(json.dumps({"work": work, "procs": procs, "forked": forked,
                      "reaper": [reaper.pid, psutil.Process(reaper.pid).create_time()]}), flush=True)
    if sys.argv[1] == "finish":
        jvm.terminate()
        reaper.finish()
        print("finished", flush=True)
    else:
        time.sleep(600)
    """
)


def start_parent(mode):
    proc = subprocess.Popen([sys.executable, "-c", PARENT, mode], stdout=subprocess.PIPE, text=True)
    facts = json.loads(proc.stdout.readline())
    assert len(facts["procs"]) == 2 and os.path.isdir(facts["work"])
    return proc, facts


def alive(pid, created):
    try:
        p = psutil.Process(pid)
        return p.create_time() == created and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_gone(facts, timeout=30):
    watched = [*facts["procs"], facts["reaper"]]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [pid for pid, created in watched if alive(pid, created)]
        if not left and not os.path.exists(facts["work"]):
            return []
        time.sleep(0.2)
    return left + ([facts["work"]] if os.path.exists(facts["work"]) else [])


def test_parent_killed_with_sigkill_leaves_nothing():
    proc, facts = start_parent("sleep")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert wait_gone(facts) == []


def test_clean_finish_removes_the_dir_and_the_reaper_exits():
    proc, facts = start_parent("finish")
    assert proc.stdout.readline().strip() == "finished"
    proc.wait(timeout=30)
    # the stand-in JVM was stopped by its parent; its orphaned child is the reaper's to kill
    assert wait_gone(facts) == []


def test_parent_killed_while_a_forked_child_holds_the_pipe_still_leaves_nothing():
    """The pipe's end of file never comes while a forked child holds it: the reaper watches the parent's pid too."""
    proc, facts = start_parent("fork")
    try:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert psutil.pid_exists(
            facts["forked"]
        ), "the forked child must still hold the pipe for this test to mean anything"
        assert wait_gone(facts) == []
    finally:
        os.kill(facts["forked"], signal.SIGKILL)
