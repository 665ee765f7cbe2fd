"""The environment Horovod's ranks run with: an allow-list of the driver's, never its secrets.

The ranks run user code on the executors; the notebook's environment holds the student's JupyterHub API token
(``JUPYTERHUB_API_TOKEN``), and a batch job's driver holds the Py4J gateway's secret
(``PYSPARK_GATEWAY_SECRET``). Only what Python, TensorFlow, Spark, Horovod and the GPU libraries read is passed
on, and nothing whose name says it is a secret, whatever its prefix.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from occam.contract import ENV_PREFIX, JUPYTERHUB_USER_ENV, tensorflow_environment

#: Variables passed on by name.
ALLOWED_NAMES = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TMPDIR",
        "HOSTNAME",
        "PYTHONPATH",
        "PYTHONHOME",
        "PYTHONHASHSEED",
        "PYTHONNOUSERSITE",
        "VIRTUAL_ENV",
        # Who the notebook's user is: occam.models.load("name") in a model_fn finds that user's models.
        JUPYTERHUB_USER_ENV,
        "LD_LIBRARY_PATH",
        "JAVA_HOME",
        "XLA_FLAGS",
        "MALLOC_ARENA_MAX",
    }
)

#: Variables passed on by prefix: locale, the libraries' own settings, Occam's.
ALLOWED_PREFIXES = (
    "LC_",
    "SPARK_",
    "PYSPARK_",
    "HOROVOD_",
    "GLOO_",
    "NCCL_",
    "CUDA_",
    "NVIDIA_",
    "TF_",
    "OMP_",
    "KMP_",
    "MKL_",
    "OPENBLAS_",
    ENV_PREFIX,
)

#: Never passed on, even under an allowed prefix.
SECRET_NAME = re.compile(r"SECRET|TOKEN|PASSW|CREDENTIAL|(^|_)KEY($|_)|AUTH", re.IGNORECASE)


def rank_environment(environ: Mapping[str, str], cores: int) -> dict[str, str]:
    """The allow-listed part of ``environ``, with the thread environment for ``cores`` cores and unbuffered output."""
    passed = {
        name: value
        for name, value in environ.items()
        if (name in ALLOWED_NAMES or name.startswith(ALLOWED_PREFIXES)) and not SECRET_NAME.search(name)
    }
    return {**passed, **tensorflow_environment(cores), "PYTHONUNBUFFERED": "1"}
