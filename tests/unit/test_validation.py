import pytest

from occam.errors import ConfigError
from occam.resources import MachineResources
from occam.validation import check_fits_machine
from tests.unit import factories

LAPTOP = MachineResources(cores=2, memory_bytes=24 << 30, gpus=0)


spec = factories.spec


def test_a_request_that_fits_passes():
    check_fits_machine(spec(2), LAPTOP)


def test_too_many_cores_names_what_the_machine_has():
    with pytest.raises(ConfigError, match=r"needs 4 cores, but this machine has 2; ask for at most n=2"):
        check_fits_machine(spec(4), LAPTOP)
    with pytest.raises(ConfigError, match=r"needs 4 cores.*at most n=1 with cores=2"):
        check_fits_machine(spec(2, cores=2), LAPTOP)


def test_too_much_memory_names_the_machine_memory():
    with pytest.raises(ConfigError, match=r"needs 30g for executors, but this machine has 24g"):
        check_fits_machine(spec(2, memory="15g"), LAPTOP)


def test_gpu_without_a_gpu_says_how_to_run_on_cpu():
    with pytest.raises(ConfigError, match=r"no GPU is visible.*gpu=False"):
        check_fits_machine(spec(1, gpu=True), LAPTOP)


def test_more_gpu_executors_than_gpus():
    machine = MachineResources(cores=16, memory_bytes=64 << 30, gpus=2)
    check_fits_machine(spec(2, gpu=True), machine)
    with pytest.raises(ConfigError, match=r"n=3 needs 3 GPUs, but this machine has 2"):
        check_fits_machine(spec(3, gpu=True), machine)
