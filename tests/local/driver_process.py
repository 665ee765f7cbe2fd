"""A stand-in notebook: starts a cluster, reports what it made as one JSON line, then obeys stdin.

Usage: python driver_process.py '{"n": 2, "timeout": 60}'
Commands on stdin: ``stop`` (cluster.stop(), then report ``stopped``), ``exit`` (leave without
stopping: the atexit hook must clean up). Killing the process is the third way out.
"""

from __future__ import annotations

import json
import os
import sys

import psutil

from occam import OccamError, start_cluster


def describe(proc: psutil.Process) -> list | None:
    try:
        return [proc.pid, proc.create_time(), " ".join(proc.cmdline()[:3])]
    except psutil.Error:  # a short-lived helper that already exited
        return None


def listening_ports(proc: psutil.Process) -> set[int]:
    try:
        return {c.laddr.port for c in proc.net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN}
    except psutil.Error:
        return set()


def facts(cluster) -> dict:
    driver = cluster.backend.driver
    jvm = psutil.Process(driver.gateway_pid)
    tree = [jvm, *jvm.children(recursive=True)]
    ports = sorted(set().union(*(listening_ports(p) for p in tree)))
    return {
        "driver": os.getpid(),
        "processes": [d for d in map(describe, tree) if d is not None],
        "ports": ports,
        "work_dir": driver.work_dir,
        "reaper": driver.reaper.pid,
        "executors": cluster.executor_count(),
        "dashboard": cluster.dashboard_link,
    }


def main() -> None:
    options = json.loads(sys.argv[1])
    try:
        cluster = start_cluster(progress=False, **options)
    except OccamError as exc:
        print(json.dumps({"error": type(exc).__name__, "message": str(exc)}), flush=True)
        return
    print(json.dumps(facts(cluster)), flush=True)
    for line in sys.stdin:
        if line.strip() == "stop":
            cluster.stop()
            print("stopped", flush=True)
        elif line.strip() == "exit":
            return


if __name__ == "__main__":
    main()
