"""Registered backends, the choice of one for ``backend="auto"``, and the backend of a running session."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from occam.backends.base import Backend
from occam.backends.embedded import EmbeddedBackend
from occam.backends.kubernetes import KubernetesBackend
from occam.backends.submitted import SubmittedBackend
from occam.contract import BACKEND_CONF
from occam.errors import ConfigError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

BACKENDS: dict[str, type[Backend]] = {}


def register(backend: type[Backend]) -> type[Backend]:
    BACKENDS[backend.name] = backend
    return backend


register(EmbeddedBackend)
register(KubernetesBackend)
register(SubmittedBackend)


def select_backend(name: str, environ: Mapping[str, str] | None = None) -> type[Backend]:
    """The backend class for ``name``; ``"auto"`` picks the highest-priority one that detects its environment.

    A backend that ``takes_over`` (a job started by spark-submit) is chosen whenever it detects its environment.
    """
    env = os.environ if environ is None else environ
    for backend in BACKENDS.values():
        if backend.takes_over and backend.detect(env):
            return backend
    if name == "auto":
        detected = [b for b in BACKENDS.values() if b.detect(env)]
        if not detected:
            return EmbeddedBackend
        return max(detected, key=lambda b: b.priority)
    try:
        return BACKENDS[name]
    except KeyError:
        known = ", ".join(sorted([*BACKENDS, "auto"]))
        raise ConfigError(f"backend={name!r} is not known; choose one of: {known}") from None


def backend_of(spark: SparkSession) -> tuple[type[Backend], dict[str, str]] | None:
    """The backend whose conf made ``spark``'s session, with that conf; None for a session Occam did not make.

    Every backend's conf names the backend (:data:`~occam.contract.BACKEND_CONF`), and so does the conf of a
    batch job it submitted, so a job's driver gets the same answers as the notebook that submitted it.
    """
    conf = dict(spark.sparkContext.getConf().getAll())
    backend = BACKENDS.get(conf.get(BACKEND_CONF, ""))
    return None if backend is None else (backend, conf)


def unshared_path_problem(spark: SparkSession, path: str, *, writer: str) -> str | None:
    """Why the executors of ``spark``'s cluster would not see ``path`` as the driver does (its backend says)."""
    found = backend_of(spark)
    return None if found is None else found[0].unshared_path_problem(found[1], path, writer=writer)


def rank_interfaces(
    spark: SparkSession, ranks: int, driver_addresses: Sequence[str], interfaces: Mapping[str, Sequence[str]]
) -> set[str] | None:
    """The interfaces Horovod's ranks on ``spark``'s cluster use to reach the driver (its backend says)."""
    found = backend_of(spark)
    return None if found is None else found[0].rank_interfaces(found[1], ranks, driver_addresses, interfaces)


__all__ = [
    "BACKENDS",
    "Backend",
    "backend_of",
    "rank_interfaces",
    "register",
    "select_backend",
    "unshared_path_problem",
]
