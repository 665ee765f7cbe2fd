"""Pure builders of a batch job's spark-submit command line, ``spark-defaults.conf`` text and log config.

The backends build each job's Spark conf (``occam.backends.embedded_jobs``, ``occam.kubernetes.job_conf``);
these turn any such conf into what spark-submit reads.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

#: Properties whose value would be a secret. Occam's conf never holds one (secrets travel as files and
#: Secret references); ``spark-defaults`` text leaves these out even if a caller adds them.
SECRET_KEYS = ("spark.authenticate.secret",)


def spark_submit_argv(
    spark_submit: str,
    conf: Mapping[str, str],
    app_resource: str,
    args: Sequence[str] = (),
    *,
    properties_file: str | None = None,
) -> list[str]:
    """The spark-submit command line: master and deploy mode from ``conf``, every property as ``--conf``.

    ``properties_file``: a private file (mode 0600) of properties that must not appear on the command line, which
    every local user can read (the RPC secret); keys in :data:`SECRET_KEYS` are never written as ``--conf``.
    """
    argv = [spark_submit, "--master", conf["spark.master"], "--deploy-mode", conf["spark.submit.deployMode"]]
    if properties_file is not None:
        argv += ["--properties-file", properties_file]
    for key in sorted(conf):
        if key not in ("spark.master", "spark.submit.deployMode", *SECRET_KEYS):
            argv += ["--conf", f"{key}={conf[key]}"]
    return [*argv, app_resource, *args]


def write_private_properties(path: str, properties: Mapping[str, str]) -> str:
    """Write ``properties`` to a new file only its owner can read (``spark-submit --properties-file``)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.writelines(f"{key} {value}\n" for key, value in properties.items())
    return path


def spark_defaults_text(conf: Mapping[str, str], header: Sequence[str] = ()) -> str:
    """``conf`` as ``spark-defaults.conf`` lines (key, spaces, value), sorted, after ``# ``-comment lines.

    Keys in :data:`SECRET_KEYS` are never written.
    """
    lines = [f"# {line}" if line else "#" for line in header]
    keys = sorted(k for k in conf if k not in SECRET_KEYS)
    width = max((len(k) for k in keys), default=0)
    lines += [f"{key.ljust(width)}  {conf[key]}" for key in keys]
    return "\n".join(lines) + "\n"


def log4j_properties(level: str = "warn") -> str:
    """A log4j2 config for spark-submit's JVM: Spark's own log at ``level`` on stderr, the job's output untouched."""
    return (
        f"rootLogger.level = {level}\n"
        "rootLogger.appenderRef.stderr.ref = console\n"
        "appender.console.type = Console\n"
        "appender.console.name = console\n"
        "appender.console.target = SYSTEM_ERR\n"
        "appender.console.layout.type = PatternLayout\n"
        "appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n%ex\n"
        # Warnings that say nothing about the job: no native Hadoop library; spark.local.dir left to the
        # cluster manager (the embedded conf sets it for the driver, which is what matters).
        "logger.hadoop.name = org.apache.hadoop.util.NativeCodeLoader\n"
        "logger.hadoop.level = error\n"
        "logger.sparkconf.name = org.apache.spark.SparkConf\n"
        "logger.sparkconf.level = error\n"
    )
