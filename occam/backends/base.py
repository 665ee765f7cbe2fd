"""The seam between :class:`occam.Cluster` and the cluster managers it runs on."""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import TYPE_CHECKING, ClassVar

from occam.errors import ConfigError
from occam.spec import ClusterSpec

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


class Backend(abc.ABC):
    """One way of running a cluster's executors. Subclasses register themselves in ``occam.backends``.

    The cluster calls :meth:`check` before anything is created, :meth:`launch` to get a Spark session
    (returning without waiting for executors), then :meth:`raise_if_failed` on every poll while it
    waits for executors, and :meth:`stop` exactly once.
    """

    #: The name users pass as ``backend=``.
    name: ClassVar[str]
    #: Higher priority wins when ``backend="auto"`` and several backends detect their environment.
    priority: ClassVar[int] = 0

    def __init__(self, spec: ClusterSpec) -> None:
        self.spec = spec

    @classmethod
    @abc.abstractmethod
    def detect(cls, environ: Mapping[str, str]) -> bool:
        """Whether this backend is the natural choice in this environment (for ``backend="auto"``)."""

    @abc.abstractmethod
    def check(self) -> None:
        """Refuse, with a :class:`~occam.errors.ConfigError`, a request that cannot fit. Creates nothing."""

    @abc.abstractmethod
    def launch(self) -> SparkSession:
        """Create the driver's Spark session; executors may still be starting when it returns."""

    def raise_if_failed(self) -> None:  # noqa: B027 - optional hook
        """Raise :class:`~occam.errors.ClusterStartError` as soon as executors are known not to come up."""

    @abc.abstractmethod
    def diagnostics(self) -> str:
        """Text to show when executors did not come up: log tails, events."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Release everything the backend made. Called once, also after a failed launch."""

    def check_scale(self, n: int) -> None:
        """Refuse, with a :class:`~occam.errors.ConfigError`, a resize to ``n`` executors that cannot fit."""
        raise ConfigError(f"the {self.name} backend cannot resize a running cluster; stop it and start a new one")

    def describe(self) -> dict[str, str]:
        """Extra facts for ``Cluster.status()`` and the notebook view."""
        return {}
