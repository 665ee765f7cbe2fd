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


def facts(cluster) -> dict:
    driver = cluster.backend.driver
    jvm = psutil.Process(driver.gateway_pid)
    tree = [jvm, *jvm.children(recursive=True)]
    ports = sorted(
        {c.laddr.port for p in tree for c in p.net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN}
    )
    return {
        "driver": os.getpid(),
        "processes": [[p.pid, p.create_time(), " ".join(p.cmdline()[:3])] for p in tree],
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
