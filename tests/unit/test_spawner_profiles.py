"""CPU and GPU profiles (spawner.profiles): what a student's choice sets on the notebook and its executors."""

from __future__ import annotations

import pytest

from occam.errors import ConfigError
from spawner.profiles import DEFAULT_GPU_TOLERATIONS, cpu_profile, gpu_profile

COURSE = {"max_executors": 2, "cpu": "8", "memory": "32Gi", "gpus": 3}


def test_a_cpu_profile_sets_guarantees_equal_to_limits():
    profile = cpu_profile("Small CPU", cpu=2, memory="4G", default=True)
    assert profile["slug"] == "small-cpu"
    assert profile["default"] is True
    assert profile["description"] == "2 CPU, 4G memory"
    assert profile["kubespawner_override"] == {
        "cpu_guarantee": 2.0,
        "cpu_limit": 2.0,
        "mem_guarantee": "4G",
        "mem_limit": "4G",
    }


def test_a_gpu_profile_places_the_notebook_and_tells_the_executors():
    profile = gpu_profile("1 GPU (T4)", cpu=4, memory="16G", node_selector={"gpu": "t4"}, course_limits=COURSE)
    override = profile["kubespawner_override"]
    assert profile["slug"] == "1-gpu-t4"
    assert override["extra_resource_limits"] == {"nvidia.com/gpu": "1"}
    assert override["extra_resource_guarantees"] == {"nvidia.com/gpu": "1"}
    assert override["node_selector"] == {"gpu": "t4"}
    assert override["tolerations"] == DEFAULT_GPU_TOLERATIONS
    # The executors' placement (read by the Kubernetes backend from the notebook's environment) and quota.
    assert override["gpu_node_selector"] == {"gpu": "t4"}
    assert override["gpu_tolerations"] == DEFAULT_GPU_TOLERATIONS
    assert override["course_limits"] == COURSE


def test_a_gpu_profile_without_selector_or_with_own_tolerations():
    toleration = {"key": "gpu", "operator": "Equal", "value": "yes", "effect": "NoSchedule"}
    override = gpu_profile("G", cpu=1, memory="1G", tolerations=[toleration], course_limits=COURSE)[
        "kubespawner_override"
    ]
    assert "node_selector" not in override and "gpu_node_selector" not in override
    assert override["tolerations"] == [toleration] == override["gpu_tolerations"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"gpus": 0}, "gpus=0 must be a whole number of at least 1"),
        (
            {"gpus": 2, "course_limits": {**COURSE, "gpus": 1}},
            r"course_limits gpus=1 is less than the notebook's gpus=2",
        ),
        ({"cpu": 0}, "cpu=0 must be a number of cores above 0"),
        ({"memory": ""}, "memory='' must be a size"),
    ],
)
def test_bad_gpu_profiles_are_refused_saying_what_to_fix(kwargs: dict, message: str):
    args = {"cpu": 1, "memory": "1G", "course_limits": COURSE, **kwargs}
    with pytest.raises(ConfigError, match=message):
        gpu_profile("GPU", **args)


def test_a_display_name_without_letters_needs_a_slug():
    with pytest.raises(ConfigError, match="needs at least one letter or digit"):
        cpu_profile("!!", cpu=1, memory="1G")
    assert cpu_profile("!!", cpu=1, memory="1G", slug="tiny")["slug"] == "tiny"


def test_a_cpu_profile_may_lend_gpus_to_its_executors() -> None:
    from spawner.profiles import cpu_profile

    profile = cpu_profile(
        "CPU, borrowed GPUs",
        cpu=1,
        memory="2G",
        course_limits={"max_executors": 2, "cpu": "4", "memory": "8Gi", "gpus": 2},
        gpu_node_selector={"gpu": "yes"},
        gpu_executor_image="reg/nb:gpu",
    )
    override = profile["kubespawner_override"]
    assert "extra_resource_limits" not in override and "node_selector" not in override  # the notebook holds none
    assert override["gpu_node_selector"] == {"gpu": "yes"}
    assert override["gpu_tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert override["gpu_executor_image"] == "reg/nb:gpu"
    with pytest.raises(ConfigError, match="allow no GPUs"):
        cpu_profile("CPU", cpu=1, memory="2G", gpu_node_selector={"gpu": "yes"})
