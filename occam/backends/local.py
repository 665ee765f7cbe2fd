"""What the embedded backend runs on this machine, for a notebook's cluster and a batch job alike: its Spark conf
and a ``SPARK_HOME`` of its own."""

from __future__ import annotations

import os
import sys

from occam.sparkconf import embedded_conf, packaged_gpu_discovery_script
from occam.spec import ClusterSpec


def embedded_spark_conf(spec: ClusterSpec, work_dir: str) -> dict[str, str]:
    """The embedded cluster's conf for ``spec``, every file under ``work_dir``, executors running this Python."""
    script = packaged_gpu_discovery_script()
    return embedded_conf(spec, python=sys.executable, work_dir=work_dir, gpu_discovery_script=script)


def make_spark_home(work_dir: str) -> str:
    """A SPARK_HOME inside ``work_dir`` that links to pip's pyspark.

    Spark's workers write executor logs under ``$SPARK_HOME/work``; this keeps them inside the
    cluster's work directory instead of the Python environment.
    """
    import pyspark

    source = os.path.dirname(pyspark.__file__)
    home = os.path.join(work_dir, "spark-home")
    os.makedirs(home)
    for entry in os.listdir(source):
        if entry != "work":
            os.symlink(os.path.join(source, entry), os.path.join(home, entry))
    return home
