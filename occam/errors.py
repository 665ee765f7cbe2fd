"""Errors a user may see. Each message says what went wrong and what to do about it."""


class OccamError(Exception):
    """Base class for every error Occam raises on purpose; its message is meant for the user."""


class ConfigError(OccamError, ValueError):
    """A request that cannot be satisfied as given (bad argument, over a limit, no GPU)."""


class ClusterStartError(OccamError, RuntimeError):
    """The cluster did not come up; the message names what was missing and shows its log."""


class ClusterStoppedError(OccamError, RuntimeError):
    """An operation on a cluster that has already been stopped."""


class DatasetError(OccamError, ValueError):
    """Data that Petastorm cannot carry (unsupported column types, missing columns, empty data)."""


class TrainingError(OccamError, RuntimeError):
    """A Horovod rank failed during cluster.fit; the message holds that rank's own traceback."""


class ServerStartError(OccamError, RuntimeError):
    """A web UI started next to the notebook (TensorBoard, the MLflow UI) did not answer; the message shows its log."""


class ModelError(OccamError, ValueError):
    """A model the store cannot publish, load or remove as asked (bad name, wrong kind, broken entry)."""


class ModelNotFoundError(ModelError, LookupError):
    """No published model (or no such version of it) under the reference given, or none you may read."""


class ModelPermissionError(ModelError, PermissionError):
    """An operation on someone else's model that only its owner may do (remove, publish under their name)."""


class ModelExistsError(ModelError, FileExistsError):
    """A version that is already in the course catalog: versions never change, publish a new one."""


class CatalogError(ModelError, ConnectionError):
    """The course catalog service could not be reached or did not answer as expected; the message says which."""


class ServiceStartError(ServerStartError):
    """A model service did not come up; the message names what it waited for and shows the service's log."""
