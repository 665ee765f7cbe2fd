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
    from occam.reaper import Reaper
    work = tempfile.mkdtemp(prefix="occam-reaper-test-")
    reaper = Reaper()
    reaper.remove_dir_on_exit(work)
    # A stand-in for the driver JVM with a child of its own (an executor).
    jvm = subprocess.Popen([sys.executable, "-c",
        "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); time.sleep(600)"])
    reaper.watch_pid(jvm.pid)
    time.sleep(2)
    print(json.dumps({"work": work, "jvm": jvm.pid, "reaper": reaper.pid}), flush=True)
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
    tree = [psutil.Process(facts["jvm"]), *psutil.Process(facts["jvm"]).children(recursive=True)]
    assert len(tree) == 2 and os.path.isdir(facts["work"])
    return proc, facts, tree


def wait_gone(procs, work, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [p for p in procs if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        if not alive and not os.path.exists(work):
            return []
        time.sleep(0.2)
    return alive


def test_parent_killed_with_sigkill_leaves_nothing():
    proc, facts, tree = start_parent("sleep")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    reaper = psutil.Process(facts["reaper"])
    assert wait_gone([*tree, reaper], facts["work"]) == []
    assert not os.path.exists(facts["work"])


def test_clean_finish_removes_the_dir_and_the_reaper_exits():
    proc, facts, tree = start_parent("finish")
    assert proc.stdout.readline().strip() == "finished"
    proc.wait(timeout=30)
    assert (
        wait_gone(
            [*tree, psutil.Process(facts["reaper"])] if psutil.pid_exists(facts["reaper"]) else tree, facts["work"]
        )
        == []
    )
