"""A stand-in notebook kernel on the Kubernetes backend: start_cluster from ``OCCAM_K8S_*``, report, obey stdin.

Usage: python k8s_driver.py '{"n": 2, "gpu": false, "timeout": 30}'. Prints one JSON line: the cluster's
name on success, or the error's type and message. Then ``stop`` on stdin stops the cluster.
"""

from __future__ import annotations

import json
import sys

from occam import OccamError, start_cluster


def main() -> None:
    options = json.loads(sys.argv[1])
    name = options.pop("name")
    print(json.dumps({"started": name}), flush=True)
    try:
        cluster = start_cluster(backend="kubernetes", name=name, progress=False, **options)
    except OccamError as exc:
        print(json.dumps({"error": type(exc).__name__, "message": str(exc)}), flush=True)
        return
    print(json.dumps({"name": cluster.name, "executors": cluster.executor_count()}), flush=True)
    for line in sys.stdin:
        if line.strip() == "stop":
            cluster.stop()
            print(json.dumps({"stopped": True}), flush=True)
            return


if __name__ == "__main__":
    main()
