"""occam course's pure parts: rows from the API's dicts, the table, the Prometheus text, the GPU cap."""

from __future__ import annotations

import datetime as dt
from typing import Any

from occam.course.check import CheckStep, report, wait_for
from occam.course.status import metrics_text, status_table, student_rows
from occam.kubernetes.usage import gpu_cap_problem, gpus_by_namespace, pod_gpus

NOW = dt.datetime(2027, 3, 1, 12, 0, tzinfo=dt.UTC)


def namespace(name: str, user: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "annotations": {"occam.io/username": user}}}


def pod(namespace: str, role: str, *, gpus: int = 0, cluster: str = "c1", phase: str = "Running") -> dict[str, Any]:
    resources = {"limits": {"nvidia.com/gpu": str(gpus)}} if gpus else {}
    labels = {"app.kubernetes.io/name": "occam", "app.kubernetes.io/component": role, "occam.io/cluster": cluster}
    return {
        "metadata": {"namespace": namespace, "labels": labels},
        "spec": {"containers": [{"name": "c", "resources": resources}]},
        "status": {"phase": phase},
    }


NAMESPACES = [namespace("occam-bob", "bob"), namespace("occam-ada", "ada"), namespace("occam-eve", "Eve.X")]
PODS = [
    pod("occam-ada", "notebook", gpus=1),
    pod("occam-ada", "executor", gpus=1, cluster="big"),
    pod("occam-ada", "executor", gpus=1, cluster="big"),
    pod("occam-ada", "executor", cluster="small"),
    pod("occam-ada", "executor", gpus=1, cluster="old", phase="Succeeded"),  # finished: holds nothing
    pod("occam-bob", "notebook", phase="Pending"),
    pod("elsewhere", "executor", gpus=4),  # not a student namespace
]


def test_rows_count_each_students_live_pods() -> None:
    rows = student_rows(NAMESPACES, PODS, last_activity={"ada": NOW - dt.timedelta(minutes=75)}, now=NOW)
    assert [(r.user, r.notebook, r.clusters, r.executors, r.gpus) for r in rows] == [
        ("ada", "running", 2, 3, 3),
        ("bob", "pending", 0, 0, 0),
        ("Eve.X", "-", 0, 0, 0),
    ]
    assert rows[0].idle == dt.timedelta(minutes=75)
    assert rows[1].idle is None  # the hub has not seen bob's server yet


def test_the_table_and_the_metrics() -> None:
    rows = student_rows(NAMESPACES, PODS, last_activity={"ada": NOW - dt.timedelta(minutes=75)}, now=NOW)
    lines = status_table(rows).splitlines()
    assert lines[0].split() == ["USER", "NAMESPACE", "NOTEBOOK", "CLUSTERS", "EXECUTORS", "GPUS", "IDLE"]
    assert lines[1].split() == ["ada", "occam-ada", "running", "2", "3", "3", "1h15m"]
    assert lines[-1].split() == ["total:", "3", "students", "1", "running", "2", "3", "3"]
    text = metrics_text(rows)
    assert 'occam_gpus_in_use{namespace="occam-ada",user="ada"} 3' in text
    assert 'occam_executors{namespace="occam-bob",user="bob"} 0' in text
    assert "occam_notebooks_running 1" in text
    assert "# TYPE occam_clusters gauge" in text


def test_gpus_held_and_the_course_cap() -> None:
    assert pod_gpus(PODS[0]) == 1 and pod_gpus(PODS[4]) == 0
    held = gpus_by_namespace(PODS)
    assert held == {"elsewhere": 4, "occam-ada": 3}
    assert gpu_cap_problem(held, asking=1, cap=0) is None  # no cap
    assert gpu_cap_problem(held, asking=1, cap=8) is None
    assert gpu_cap_problem(held, asking=2, cap=8) is not None
    # a CPU notebook that borrows GPUs needs one free
    assert gpu_cap_problem(held, asking=0, cap=8) is None
    problem = gpu_cap_problem(held, asking=0, cap=7)
    assert problem is not None and "7 of the 7" in problem and "2 running server(s)" in problem
    assert "occam-ada" not in problem  # students see counts, not who


def test_the_check_report_and_its_waits() -> None:
    text = report(
        [CheckStep("create a test user", True, 0.2, "user x"), CheckStep("start its server", False, 600, "waited")]
    )
    assert "FAILED" in text and text.rstrip().endswith("the install does NOT work (see above)")
    assert report([CheckStep("a", True, 1.0)]).rstrip().endswith("the install works")
    answers = iter([None, None, "yes"])
    assert wait_for("an answer", lambda: next(answers), 5, every=0.01) == "yes"
    try:
        wait_for("a server to be ready", lambda: None, 0.05, every=0.01)
    except TimeoutError as exc:
        assert "a server to be ready" in str(exc)
    else:
        raise AssertionError("wait_for did not time out")
