"""Checks of a request against what a machine can give. Pure: the machine is passed in."""

from __future__ import annotations

import os
import shutil

from occam.errors import ConfigError
from occam.resources import MachineResources
from occam.spec import ClusterSpec, format_memory

#: Memory kept back for the driver JVM, the notebook and the Python workers beside the executors.
DRIVER_RESERVE_BYTES = 2 << 30


def check_fits_machine(spec: ClusterSpec, machine: MachineResources) -> None:
    """Refuse an embedded cluster this machine cannot hold, saying what it has."""
    wanted_cores = spec.n * spec.cores
    if wanted_cores > machine.cores:
        raise ConfigError(
            f"start_cluster(n={spec.n}, cores={spec.cores}) needs {wanted_cores} cores, but this machine has "
            f"{machine.cores}; ask for at most n={max(1, machine.cores // spec.cores)} with cores={spec.cores}, "
            "or run on a Kubernetes or Spark standalone cluster"
        )
    usable = machine.memory_bytes - DRIVER_RESERVE_BYTES
    wanted_memory = spec.n * spec.memory_bytes
    if wanted_memory > usable:
        raise ConfigError(
            f"start_cluster(n={spec.n}, memory={spec.memory!r}) needs {format_memory(wanted_memory)} for "
            f"executors, but this machine has {format_memory(machine.memory_bytes)} of memory "
            f"({format_memory(DRIVER_RESERVE_BYTES)} is kept for the driver); ask for less memory per executor"
        )
    if spec.gpu and machine.gpus == 0:
        raise ConfigError(
            "gpu=True, but no GPU is visible on this machine (nvidia-smi finds none, or CUDA_VISIBLE_DEVICES "
            "hides them); run on CPU with start_cluster(..., gpu=False), or start your notebook from a GPU profile"
        )
    if spec.gpu and spec.n > machine.gpus:
        raise ConfigError(
            f"gpu=True gives each executor one GPU, so n={spec.n} needs {spec.n} GPUs, but this machine has "
            f"{machine.gpus}; ask for n={machine.gpus} or fewer"
        )


def check_java(who: str = "Spark") -> None:
    """Refuse to start a JVM (a Spark driver, spark-submit) without Java, saying how to get it."""
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        raise ConfigError(
            f"{who} needs a Java runtime and none was found; install Java 17 "
            "(e.g. 'apt-get install openjdk-17-jre-headless') or set JAVA_HOME"
        )
