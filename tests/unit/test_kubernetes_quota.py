import pytest

from occam.errors import ConfigError
from occam.kubernetes.objects import executor_pod_memory_bytes, memory_overhead_mib
from occam.kubernetes.quota import check_fits_quota, format_bytes, largest_executor_memory_mib
from occam.spec import make_spec


def spec(n=2, **kw):
    args = {"cores": 1, "memory": "1g", "gpu": False, "timeout": 60, "name": "occam-new"}
    args.update(kw)
    return make_spec(n, **args)


def quota(hard, used=None, name="compute", **quota_spec):
    return {
        "metadata": {"name": name},
        "spec": {"hard": hard, **quota_spec},
        "status": {"hard": hard, "used": used or {}},
    }


def limit_range(*limits, name="limits"):
    return {"metadata": {"name": name}, "spec": {"limits": list(limits)}}


def refusal(*args, **kw):
    with pytest.raises(ConfigError) as raised:
        check_fits_quota(*args, **kw)
    return str(raised.value)


def test_a_request_within_every_limit_passes():
    quotas = [quota({"pods": "10", "requests.cpu": "8", "requests.memory": "16Gi", "requests.nvidia.com/gpu": "4"})]
    ranges = [limit_range({"type": "Container", "max": {"cpu": "4", "memory": "8Gi"}})]
    assert check_fits_quota(spec(4, gpu=True), quotas, ranges, None) is None


def test_no_quotas_and_no_limit_ranges_means_no_limits():
    check_fits_quota(spec(100, cores=64, memory="500g", gpu=True), [], [], None)


def test_gpu_refusal_names_the_cluster_holding_the_gpu():
    quotas = [quota({"requests.nvidia.com/gpu": "2"}, {"requests.nvidia.com/gpu": "1"})]
    usage = {"occam-ab12cd34": {"requests.nvidia.com/gpu": "1", "requests.cpu": "1", "pods": "1"}}
    message = refusal(spec(4, gpu=True), quotas, [], usage)
    assert "you asked for 4 GPUs; your quota allows 2 and 1 is in use by cluster occam-ab12cd34" in message
    assert "ask for n=1 or fewer" in message
    assert "stop it first with cluster.stop()" in message


def test_gpu_refusal_without_cluster_usage_still_gives_the_numbers():
    quotas = [quota({"requests.nvidia.com/gpu": "2"}, {"requests.nvidia.com/gpu": "2"})]
    message = refusal(spec(1, gpu=True), quotas, [])
    assert "you asked for 1 GPU; your quota allows 2 and 2 are in use;" in message
    assert "by cluster" not in message
    assert "larger quota" in message


def test_several_clusters_and_other_pods_are_all_named():
    quotas = [quota({"requests.cpu": "4"}, {"requests.cpu": "3500m"})]
    usage = {
        "occam-b": {"requests.cpu": "2"},
        "occam-a": {"requests.cpu": "1"},
        "occam-idle": {"requests.cpu": "0", "pods": "0"},
    }
    message = refusal(spec(1), quotas, [], usage)
    assert "you asked for 1 core; your quota allows 4 and 3.5 is in use by clusters occam-a, occam-b" in message
    assert "occam-idle" not in message
    assert "other pods (your notebook among them)" in message
    assert "stop them first" in message


def test_gpu_quota_does_not_limit_a_cpu_cluster():
    check_fits_quota(spec(4, gpu=False), [quota({"requests.nvidia.com/gpu": "0"})], [], None)


def test_gpu_quota_key_follows_the_gpu_resource():
    quotas = [quota({"requests.amd.com/gpu": "1"})]
    check_fits_quota(spec(2, gpu=True), quotas, [], None)
    message = refusal(spec(2, gpu=True), quotas, [], gpu_resource="amd.com/gpu")
    assert "you asked for 2 GPUs; your quota allows 1" in message


@pytest.mark.parametrize("key", ["requests.cpu", "cpu", "limits.cpu"])
def test_cpu_quota_counts_cores_times_executors(key):
    check_fits_quota(spec(3, cores=2), [quota({key: "6"})], [], None)
    message = refusal(spec(3, cores=2), [quota({key: "6"}, {key: "500m"})], [])
    assert "you asked for 6 cores; your quota allows 6 and 0.5 is in use" in message
    assert "ask for n=2 or fewer" in message
    assert f"(ResourceQuota 'compute', {key})" in message


@pytest.mark.parametrize("key", ["requests.memory", "memory", "limits.memory"])
def test_memory_quota_counts_sparks_overhead(key):
    per_pod = executor_pod_memory_bytes(spec(memory="1g"))
    assert per_pod == (1024 + 384) << 20
    check_fits_quota(spec(2, memory="1g"), [quota({key: str(2 * per_pod)})], [], None)
    message = refusal(spec(2, memory="1g"), [quota({key: str(2 * per_pod - 1)})], [])
    assert f"you asked for {format_bytes(2 * per_pod)} of memory" in message
    assert "ask for n=1 or fewer" in message


def test_pod_quota_counts_executor_pods():
    message = refusal(spec(3), [quota({"pods": "4"}, {"pods": "2"})], [])
    assert "you asked for 3 executor pods; your quota allows 4 and 2 are in use" in message
    assert "ask for n=2 or fewer" in message


def test_status_hard_is_preferred_and_spec_hard_is_the_fallback():
    stale = {"metadata": {"name": "q"}, "spec": {"hard": {"pods": "1"}}, "status": {"hard": {"pods": "5"}}}
    check_fits_quota(spec(3), [stale], [], None)
    fresh = {"metadata": {"name": "q"}, "spec": {"hard": {"pods": "1"}}}
    assert "your quota allows 1" in refusal(spec(3), [fresh], [])


def test_the_spawner_s_whole_quota_still_gives_the_pod_count_message():
    # Every key the spawner's quota sets (object counts, storage, NodePorts) but the ones Occam checks is
    # left to Kubernetes; the message about what a cluster needs stays Occam's.
    from spawner.limits import CourseLimits
    from spawner.namespace import resource_quota

    hard = resource_quota("ada", CourseLimits(max_executors=2, cpu="8", memory="16Gi"))["spec"]["hard"]
    check_fits_quota(spec(2), [quota(hard, {"pods": "1"})], [], None)
    message = refusal(spec(3), [quota(hard, {"pods": "1"})], [], None)
    assert message == (
        "you asked for 3 executor pods; your quota allows 3 and 1 is in use; ask for n=2 or fewer "
        "(ResourceQuota 'compute', pods)"
    )


def test_keys_occam_does_not_check_are_ignored():
    check_fits_quota(spec(3), [quota({"services": "0", "requests.storage": "1Gi", "count/jobs.batch": "0"})], [], None)


@pytest.mark.parametrize(
    "scoping",
    [
        {"scopes": ["BestEffort"]},
        {"scopes": ["Terminating"]},
        {"scopeSelector": {"matchExpressions": [{"scopeName": "PriorityClass", "operator": "In", "values": ["hi"]}]}},
        {"scopeSelector": {"matchExpressions": [{"scopeName": "PriorityClass", "operator": "Exists"}]}},
    ],
)
def test_quotas_scoped_to_other_pods_are_skipped(scoping):
    check_fits_quota(spec(3), [quota({"pods": "1"}, **scoping)], [], None)


@pytest.mark.parametrize(
    "scoping",
    [
        {"scopes": ["NotBestEffort"]},
        {"scopes": ["NotTerminating"]},
        {"scopeSelector": {"matchExpressions": [{"scopeName": "PriorityClass", "operator": "NotIn", "values": ["x"]}]}},
    ],
)
def test_quotas_scoped_to_pods_like_executors_apply(scoping):
    assert "executor pods" in refusal(spec(3), [quota({"pods": "1"}, **scoping)], [])


def test_limit_range_max_cpu_names_the_max_and_the_fix():
    ranges = [limit_range({"type": "Container", "max": {"cpu": "2"}})]
    message = refusal(spec(1, cores=4), [], ranges)
    assert "each executor needs 4 cores, but LimitRange 'limits' allows at most 2 cores per container" in message
    assert "ask for cores=2 or fewer" in message


def test_limit_range_max_memory_counts_the_overhead_and_suggests_a_size_that_fits():
    ranges = [limit_range({"type": "Pod", "max": {"memory": "4Gi"}})]
    check_fits_quota(spec(1, memory="3712m"), [], ranges, None)
    message = refusal(spec(1, memory="4g"), [], ranges)
    assert "allows at most 4Gi of memory per pod" in message
    assert "memory='4g' plus Spark's overhead" in message
    assert "ask for memory='3712m' or less" in message


def test_limit_range_max_gpu_applies_to_gpu_clusters_only():
    ranges = [limit_range({"type": "Container", "max": {"nvidia.com/gpu": "0"}})]
    check_fits_quota(spec(1, gpu=False), [], ranges, None)
    assert "gpu=False" in refusal(spec(1, gpu=True), [], ranges)


def test_limit_range_min_is_checked_too():
    ranges = [limit_range({"type": "Container", "min": {"cpu": "1500m"}})]
    message = refusal(spec(1, cores=1), [], ranges)
    assert "requires at least 1.5 cores per container" in message
    assert "ask for cores=2 or more" in message


def test_limit_ranges_for_volumes_are_ignored():
    check_fits_quota(spec(1, cores=8), [], [limit_range({"type": "PersistentVolumeClaim", "max": {"storage": "1"}})])


def test_every_problem_is_reported_at_once():
    quotas = [quota({"requests.nvidia.com/gpu": "1", "pods": "1"})]
    ranges = [limit_range({"type": "Container", "max": {"cpu": "1"}})]
    message = refusal(spec(2, cores=2, gpu=True), quotas, ranges)
    assert message.startswith("this cluster does not fit your namespace's limits:")
    assert message.count("\n- ") == 3


def test_garbage_in_a_quota_is_reported_not_ignored():
    with pytest.raises(ConfigError, match="Kubernetes quantity"):
        check_fits_quota(spec(1), [quota({"requests.cpu": "lots"})], [], None)


@pytest.mark.parametrize("budget_mib", [400, 512, 700, 1024, 4096, 4224, 4225, 8192, 65536])
def test_largest_executor_memory_is_the_largest_that_fits(budget_mib):
    heap = largest_executor_memory_mib(budget_mib << 20)
    assert heap + memory_overhead_mib(heap) <= budget_mib
    assert heap + 1 + memory_overhead_mib(heap + 1) > budget_mib


def test_no_executor_fits_under_the_overhead():
    assert largest_executor_memory_mib(384 << 20) == 0
