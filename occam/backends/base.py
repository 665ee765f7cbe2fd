"""The seam between :class:`occam.Cluster` and the cluster managers it runs on.

A backend owns every fact that depends on where executors run: how a request is sized and checked, how
executors start and stop, whether a local path is shared between the driver and the executors, which network
interface Horovod's ranks use, and how a batch job is submitted. The layers above (``occam.cluster``,
``occam.data``, ``occam.training``, ``occam.submit``) ask the backend; they never look at master URLs or import
a backend's builders.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from occam import config
from occam.errors import ConfigError
from occam.spec import ClusterSpec, make_spec

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from occam.batch.job import Submission


@dataclass(frozen=True)
class ModelServiceRequest:
    """What ``occam.models.serve`` asks a backend to run: one store version (``ref``, in ``model_dir``) behind
    ``token``, up within ``timeout`` seconds, taking request bodies up to ``max_bytes``; ``keep``: outlive the
    notebook. ``metadata_path``: where, under the service's address, it answers ``GET`` with the token once up."""

    model: str
    version: int
    ref: str
    model_dir: str
    token: str
    metadata_path: str
    timeout: float
    max_bytes: int
    keep: bool = False


class RunningModelService(Protocol):
    """A model service a backend started: ``url`` from the notebook, ``base_path`` (its path prefix behind
    JupyterHub's proxy, "" outside JupyterHub)."""

    @property
    def url(self) -> str: ...

    @property
    def base_path(self) -> str: ...

    @property
    def running(self) -> bool: ...

    def log(self) -> str: ...

    def stop(self) -> None: ...


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
    #: When it detects its environment, this backend is used whatever backend was asked for (a job started
    #: by spark-submit already runs its driver: no other can start in that process).
    takes_over: ClassVar[bool] = False

    def __init__(self, spec: ClusterSpec) -> None:
        self.spec = spec

    @classmethod
    @abc.abstractmethod
    def detect(cls, environ: Mapping[str, str]) -> bool:
        """Whether this backend is the natural choice in this environment (for ``backend="auto"``)."""

    @classmethod
    def request(
        cls,
        n: int | None = None,
        *,
        gpu: bool = False,
        cores: int | None = None,
        memory: str | int | None = None,
        timeout: float | None = None,
        name: str | None = None,
    ) -> ClusterSpec:
        """The :class:`ClusterSpec` of a ``start_cluster`` call: arguments over ``OCCAM_*`` over the defaults."""
        return make_spec(
            config.get("n", n),
            cores=config.get("cores", cores),
            memory=config.get("memory", memory),
            gpu=gpu,
            timeout=config.get("timeout", timeout),
            name=name,
        )

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

    # -- answers that depend on where executors run, for a session this backend's conf made --------------
    # Class methods of the session's Spark conf, so that a batch job's driver (whose session spark-submit
    # made from this backend's conf) gets the same answers: see occam.backends.backend_of.

    @classmethod
    def unshared_path_problem(cls, conf: Mapping[str, str], path: str, *, writer: str) -> str | None:
        """Why executors and the driver would not see the same files at ``path``, or None when they do.

        ``writer`` starts the message (e.g. "the dataset is converted"). By default executors share
        the driver's filesystem.
        """
        return None

    @classmethod
    def rank_interfaces(
        cls,
        conf: Mapping[str, str],
        ranks: int,
        driver_addresses: Sequence[str],
        interfaces: Mapping[str, Sequence[str]],
    ) -> set[str] | None:
        """The network interfaces Horovod's ranks use to reach the driver, or None to let Horovod find them."""
        return None

    # -- model services (occam.models.serve) ---------------------------------------------------------------

    @classmethod
    def serves_models_in_pods(cls, environ: Mapping[str, str]) -> bool:
        """Whether ``occam.models.serve`` runs a model service as objects of this backend's cluster manager
        (pods behind a Service) rather than as a process beside the notebook. By default a process."""
        return False

    @classmethod
    def start_model_service(
        cls, request: ModelServiceRequest, environ: Mapping[str, str], **context: Any
    ) -> RunningModelService:
        """Run the model service in this backend's cluster manager and wait until it answers."""
        raise ConfigError(
            f"the {cls.name} backend runs model services as a process beside the notebook: use where='process'"
        )

    @classmethod
    def stop_model_service(cls, model: str, version: int, environ: Mapping[str, str]) -> None:
        """Stop the service of ``model`` version ``version`` in the cluster manager (one kept by an earlier
        notebook)."""
        raise ConfigError(f"the {cls.name} backend keeps no model service beyond the process that started it")

    # -- occam status / occam stop: the clusters of a cluster manager, from outside their driver ---------

    @classmethod
    def status_text(cls, environ: Mapping[str, str]) -> str:
        """A table of the clusters this backend's cluster manager runs for the user."""
        raise ConfigError(cls._no_manager())

    @classmethod
    def stop_clusters(cls, names: Sequence[str], every: bool, environ: Mapping[str, str]) -> list[str]:
        """Stop the named clusters (or ``every`` one); a line each saying what went."""
        raise ConfigError(cls._no_manager())

    @classmethod
    def _no_manager(cls) -> str:
        return (
            "occam status and occam stop work on Kubernetes clusters, from a notebook pod started by OccamSpawner; "
            f"{cls.name} clusters live inside the Python process that started them: use occam.list_clusters() "
            "and cluster.stop() there"
        )

    # -- batch jobs (occam submit, occam conf) ----------------------------------------------------------

    @classmethod
    def submit_job(cls, submission: Submission) -> int:
        """Run the submission's job on ``spec.n`` executors; its exit status (0 once submitted, detached)."""
        raise ConfigError(f"batch jobs cannot run on the {cls.name} backend; use --backend embedded or kubernetes")

    @classmethod
    def job_conf_text(
        cls, spec: ClusterSpec, *, service_account: str | None, template_dir: str, environ: Mapping[str, str]
    ) -> str:
        """``spark-defaults.conf`` text for plain spark-submit: the properties :meth:`submit_job` would pass."""
        raise ConfigError(f"batch jobs cannot run on the {cls.name} backend; use --backend embedded or kubernetes")
