import pytest

from occam.errors import ConfigError
from occam.kubernetes.pods import pod_summary, start_problem, usage_by_cluster
from occam.kubernetes.quota import check_fits_quota
from occam.spec import make_spec


def pod(name, *, phase="Pending", conditions=(), waiting=None, cluster="occam-a", requests=None, limits=None):
    container_statuses = [{"name": "executor", "state": {"waiting": waiting}}] if waiting else []
    return {
        "metadata": {"name": name, "labels": {"occam.io/cluster": cluster}},
        "spec": {
            "containers": [{"name": "executor", "resources": {"requests": requests or {}, "limits": limits or {}}}]
        },
        "status": {"phase": phase, "conditions": list(conditions), "containerStatuses": container_statuses},
    }


def test_unschedulable_pod_gives_the_schedulers_reason():
    unschedulable = {
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
    }
    problem = start_problem([pod("a-exec-1"), pod("a-exec-2", conditions=[unschedulable])])
    assert (
        problem == "executor pod a-exec-2 cannot be scheduled: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
    )


def test_image_pull_failure_and_crash_loop_are_fatal():
    pull = pod("p", waiting={"reason": "ImagePullBackOff", "message": 'Back-off pulling image "x:1"'})
    assert "its image cannot be pulled (ImagePullBackOff: Back-off pulling image" in start_problem([pull])
    crash = pod("c", phase="Running", waiting={"reason": "CrashLoopBackOff"})
    assert "keeps crashing" in start_problem([crash])


def test_pods_that_are_only_slow_are_not_a_problem():
    creating = pod("p", waiting={"reason": "ContainerCreating"})
    assert start_problem([creating, pod("q", phase="Running")]) is None
    assert pod_summary([creating]) == "p: Pending (ContainerCreating)"
    assert pod_summary([]) == "no executor pod was created"


def test_usage_by_cluster_feeds_the_quota_message():
    pods = [
        pod("a1", phase="Running", requests={"cpu": "500m", "memory": "1Gi"}, limits={"nvidia.com/gpu": "1"}),
        pod("b1", phase="Running", cluster="occam-b", requests={"cpu": "1", "memory": "512Mi"}),
        pod("old", phase="Succeeded", cluster="occam-c", requests={"cpu": "4"}),
    ]
    usage = usage_by_cluster(pods)
    assert usage == {
        "occam-a": {
            "pods": "1",
            "requests.cpu": "500m",
            "requests.memory": str(1 << 30),
            "requests.nvidia.com/gpu": "1",
        },
        "occam-b": {
            "pods": "1",
            "requests.cpu": "1000m",
            "requests.memory": str(512 << 20),
            "requests.nvidia.com/gpu": "0",
        },
    }
    quota = {
        "metadata": {"name": "student"},
        "status": {"hard": {"requests.nvidia.com/gpu": "2"}, "used": {"requests.nvidia.com/gpu": "1"}},
    }
    spec = make_spec(4, cores=1, memory="1g", gpu=True, timeout=60)
    with pytest.raises(
        ConfigError, match=r"you asked for 4 GPUs; your quota allows 2 and 1 is in use by cluster occam-a"
    ):
        check_fits_quota(spec, [quota], [], usage)


def test_clusters_in_groups_pods_by_cluster():
    from occam.kubernetes.pods import clusters_in

    pods = [pod("a1", phase="Running"), pod("a2"), pod("b1", cluster="occam-b", phase="Running")]
    pods[0]["metadata"]["labels"]["occam.io/user"] = "ada"
    found = clusters_in([*pods, {"metadata": {"name": "other", "labels": {}}}])
    assert found["occam-a"]["executors"] == 2 and found["occam-a"]["phases"] == {"Running": 1, "Pending": 1}
    assert found["occam-a"]["user"] == "ada" and set(found) == {"occam-a", "occam-b"}
    assert found["occam-a"]["driver"] is None


def test_clusters_in_counts_a_batch_jobs_driver_apart_from_its_executors():
    from occam.kubernetes.pods import clusters_in

    driver = pod("job-driver", phase="Running", cluster="occam-job")
    driver["metadata"]["labels"]["app.kubernetes.io/component"] = "driver"
    executor = pod("job-exec-1", cluster="occam-job")
    executor["metadata"]["labels"]["app.kubernetes.io/component"] = "executor"
    found = clusters_in([driver, executor])
    assert found["occam-job"]["executors"] == 1 and found["occam-job"]["driver"] == "Running"
    assert found["occam-job"]["phases"] == {"Pending": 1}
