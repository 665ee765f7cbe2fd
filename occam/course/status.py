"""Who holds what in a course: one row per student namespace, as a table and as Prometheus metrics.

Pure: :func:`student_rows` takes the API's dicts (the spawner's namespaces, the Occam pods of every
namespace) and, if the hub was asked, each user's last activity; :func:`status_table` and
:func:`metrics_text` format the rows. The names are the students': show them to admins only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from occam.contract import (
    CLUSTER_LABEL,
    COMPONENT_LABEL,
    DRIVER_COMPONENT,
    EXECUTOR_COMPONENT,
    NOTEBOOK_COMPONENT,
    USERNAME_ANNOTATION,
)
from occam.kubernetes.usage import is_live, pod_gpus

#: Spark's own label on the pods of an application it runs.
SPARK_ROLE_LABEL = "spark-role"


@dataclass(frozen=True)
class StudentRow:
    """One student's namespace: its notebook's phase, live clusters and executors, GPUs held, and how long
    the notebook server has been idle (None: the hub was not asked, or the server is not running)."""

    namespace: str
    user: str
    notebook: str
    clusters: int
    executors: int
    gpus: int
    idle: dt.timedelta | None


def _labels(pod: Mapping[str, Any]) -> Mapping[str, str]:
    return (pod.get("metadata") or {}).get("labels") or {}


def pod_role(pod: Mapping[str, Any]) -> str:
    """``notebook``, ``executor``, ``driver`` (a batch job's) or ``other``, from Occam's and Spark's labels."""
    labels = _labels(pod)
    component = labels.get(COMPONENT_LABEL)
    if component in (NOTEBOOK_COMPONENT, EXECUTOR_COMPONENT, DRIVER_COMPONENT):
        return str(component)
    role = labels.get(SPARK_ROLE_LABEL)
    return str(role) if role in (EXECUTOR_COMPONENT, DRIVER_COMPONENT) else "other"


def student_rows(
    namespaces: Iterable[Mapping[str, Any]],
    pods: Iterable[Mapping[str, Any]],
    *,
    last_activity: Mapping[str, dt.datetime] | None = None,
    now: dt.datetime | None = None,
) -> list[StudentRow]:
    """A row per namespace of ``namespaces`` (sorted by name) from the ``pods`` in it.

    ``last_activity``: username -> when the hub last saw the student's server active (the hub API's
    ``last_activity``), for the idle column.
    """
    now = now or dt.datetime.now(dt.UTC)
    by_namespace: dict[str, list[Mapping[str, Any]]] = {}
    for pod in pods:
        by_namespace.setdefault((pod.get("metadata") or {}).get("namespace", ""), []).append(pod)
    rows = []
    for namespace in sorted(namespaces, key=lambda n: n["metadata"]["name"]):
        name = namespace["metadata"]["name"]
        user = ((namespace["metadata"].get("annotations") or {}).get(USERNAME_ANNOTATION)) or "?"
        live = [pod for pod in by_namespace.get(name, []) if is_live(pod)]
        notebooks = [pod for pod in live if pod_role(pod) == NOTEBOOK_COMPONENT]
        executors = [pod for pod in live if pod_role(pod) == EXECUTOR_COMPONENT]
        clusters = {_labels(pod).get(CLUSTER_LABEL) or _labels(pod).get("spark-app-selector") for pod in executors}
        phase = ((notebooks[0].get("status") or {}).get("phase") or "Pending").lower() if notebooks else "-"
        seen = (last_activity or {}).get(user) if notebooks else None
        rows.append(
            StudentRow(
                namespace=name,
                user=user,
                notebook=phase,
                clusters=len(clusters),
                executors=len(executors),
                gpus=sum(pod_gpus(pod) for pod in live),
                idle=max(now - seen, dt.timedelta(0)) if seen is not None else None,
            )
        )
    return rows


def _minutes(idle: dt.timedelta | None) -> str:
    if idle is None:
        return "-"
    minutes = int(idle.total_seconds() // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m"


COLUMNS = ("USER", "NAMESPACE", "NOTEBOOK", "CLUSTERS", "EXECUTORS", "GPUS", "IDLE")


def status_table(rows: Iterable[StudentRow]) -> str:
    """The rows as an aligned text table (as ``kubectl get`` prints), with a total line."""
    rows = list(rows)
    cells = [
        [r.user, r.namespace, r.notebook, str(r.clusters), str(r.executors), str(r.gpus), _minutes(r.idle)]
        for r in rows
    ]
    running = sum(1 for r in rows if r.notebook == "running")
    cells.append(
        [
            f"total: {len(rows)} students",
            "",
            f"{running} running",
            str(sum(r.clusters for r in rows)),
            str(sum(r.executors for r in rows)),
            str(sum(r.gpus for r in rows)),
            "",
        ]
    )
    widths = [max(len(column), *(len(row[i]) for row in cells)) for i, column in enumerate(COLUMNS)]
    lines = [
        "  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip()
        for line in [list(COLUMNS), *cells]
    ]
    return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


#: (metric, help, the row's field) of :func:`metrics_text`, per namespace.
METRICS = (
    ("occam_executors", "Occam executor pods running or pending in the student's namespace.", "executors"),
    ("occam_clusters", "Occam clusters with executors in the student's namespace.", "clusters"),
    ("occam_gpus_in_use", "GPUs held by the student's pods (notebook and executors).", "gpus"),
)


def metrics_text(rows: Iterable[StudentRow]) -> str:
    """The rows in Prometheus' text exposition format (version 0.0.4): executors, clusters and GPUs per
    namespace, labelled ``namespace`` and ``user``, and the course's running notebooks."""
    rows = list(rows)
    lines = []
    for metric, help_text, field in METRICS:
        lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} gauge"]
        lines += [
            f'{metric}{{namespace="{_escape(r.namespace)}",user="{_escape(r.user)}"}} {getattr(r, field)}' for r in rows
        ]
    lines += [
        "# HELP occam_notebooks_running Students' notebook servers whose pod is running.",
        "# TYPE occam_notebooks_running gauge",
        f"occam_notebooks_running {sum(1 for r in rows if r.notebook == 'running')}",
    ]
    return "\n".join(lines) + "\n"


__all__ = ["METRICS", "StudentRow", "metrics_text", "pod_role", "status_table", "student_rows"]
