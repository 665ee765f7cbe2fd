"""Fixtures of the local tier: a real embedded cluster (separate executor JVMs) shared by the session.

One Spark driver per Python process is all Spark allows, so tests that need a cluster of their own
(start-up errors, leaks, SIGKILL) run it in a separate driver process (``driver_process.py``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from occam import Cluster, Dataset, start_cluster
from occam.backends.driver import scoped_environ
from occam.examples.digits import load_digits


# Package scope: the local tier's cluster stops when the tier ends, so that tiers after it in the same pytest
# run can start a driver of their own (Spark allows one per process).
@pytest.fixture(scope="package", autouse=True)
def isolated_occam_dirs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep the dataset cache and checkpoints of the tests out of the developer's home."""
    root = tmp_path_factory.mktemp("occam-home")
    with scoped_environ({"OCCAM_CACHE_DIR": str(root / "cache"), "OCCAM_CHECKPOINT_DIR": str(root / "checkpoints")}):
        yield


@pytest.fixture(scope="package")
def cluster(isolated_occam_dirs: None) -> Iterator[Cluster]:
    with start_cluster(n=2, progress=False) as running:
        yield running


@pytest.fixture(scope="session")
def digits() -> tuple:
    return load_digits()


@pytest.fixture(scope="package")
def digits_train(cluster: Cluster, digits: tuple) -> Dataset:
    x_train, y_train, _, _ = digits
    return Dataset.from_numpy(x_train, y_train, spark=cluster.spark)
