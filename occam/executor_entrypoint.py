"""The entrypoint of Occam's notebook/executor image (``images/notebook/entrypoint.sh`` runs it under tini).

One image runs the notebook, its executors and batch-job drivers, so that all of them share the exact
same Python environment. What runs depends on the container's arguments:

``executor``
    A Spark executor in a pod that Spark on Kubernetes created. Spark starts such a container with the
    image's own entrypoint and the single argument ``executor``, and describes the executor in
    environment variables (``SPARK_DRIVER_URL``, ``SPARK_EXECUTOR_ID``, ...; see :data:`EXECUTOR_ENV`).
    :func:`executor_argv` turns them into the JVM command line of Spark's
    ``KubernetesExecutorBackend``, as Spark 3.5's own image entrypoint does (checked against Spark's
    ``Constants`` and the backend's usage text in pyspark 3.5.7's jars).
``driver ARGS...``
    The driver of a cluster-mode ``spark-submit`` (a batch job). Spark passes ``driver`` followed by
    ``--properties-file ... --class ... <application> <arguments>`` and the pod's IP in
    ``SPARK_DRIVER_BIND_ADDRESS``; the pod runs ``spark-submit`` in client mode (:func:`driver_argv`).
anything else
    Run as given: ``jupyterhub-singleuser`` for a notebook (KubeSpawner sets the container's ``args``
    and keeps the image's entrypoint), a shell for debugging.

The chosen command replaces this process (``exec``), so tini, PID 1, forwards signals straight to it.
The command builders are pure functions of the environment and the arguments.
"""

from __future__ import annotations

import os
import pwd
import re
import sys
from collections.abc import Mapping, Sequence
from typing import NoReturn

#: The backend class Spark's executor pods run (spark-kubernetes jar).
EXECUTOR_BACKEND = "org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend"

#: Environment variable -> the backend option it fills; Spark sets all of them on executor pods.
EXECUTOR_ENV: dict[str, str] = {
    "SPARK_DRIVER_URL": "--driver-url",
    "SPARK_EXECUTOR_ID": "--executor-id",
    "SPARK_EXECUTOR_CORES": "--cores",
    "SPARK_APPLICATION_ID": "--app-id",
    "SPARK_EXECUTOR_POD_IP": "--hostname",
    "SPARK_RESOURCE_PROFILE_ID": "--resourceProfileId",
}

#: Set by Spark 3.3+ on executor pods; passed on when present.
POD_NAME_ENV = "SPARK_EXECUTOR_POD_NAME"

#: The executor JVM's heap (``-Xms``/``-Xmx``), e.g. ``1024m``.
MEMORY_ENV = "SPARK_EXECUTOR_MEMORY"

#: Executor JVM options: ``SPARK_JAVA_OPT_0``, ``SPARK_JAVA_OPT_1``, ... in numeric order.
JAVA_OPT_PREFIX = "SPARK_JAVA_OPT_"

#: The pod IP a cluster-mode driver binds to (Spark sets it from the downward API).
DRIVER_BIND_ENV = "SPARK_DRIVER_BIND_ADDRESS"

#: Exit status for a container started with arguments or an environment that cannot work (BSD's EX_USAGE).
EXIT_USAGE = 64

_MEMORY = re.compile(r"^[0-9]+[kKmMgGtT]?$")


class EntrypointError(Exception):
    """The container's arguments or environment cannot start what was asked; the message says what to set."""


def spark_home(env: Mapping[str, str]) -> str:
    """``SPARK_HOME`` (the image sets it to pyspark's install directory)."""
    home = env.get("SPARK_HOME", "").rstrip("/")
    if not home:
        raise EntrypointError(
            "SPARK_HOME is not set: the image sets it to pyspark's directory in the venv; "
            "set it to that directory (python -c 'import pyspark, os; print(os.path.dirname(pyspark.__file__))')"
        )
    return home


def java_binary(env: Mapping[str, str]) -> str:
    """``$JAVA_HOME/bin/java`` when ``JAVA_HOME`` is set, else ``java`` from ``PATH``."""
    java_home = env.get("JAVA_HOME", "").rstrip("/")
    return f"{java_home}/bin/java" if java_home else "java"


def java_options(env: Mapping[str, str]) -> list[str]:
    """The executor JVM's options from ``SPARK_JAVA_OPT_<n>``, ordered by ``n`` as numbers (10 after 9)."""
    numbered: list[tuple[int, str]] = []
    for name, value in env.items():
        if not name.startswith(JAVA_OPT_PREFIX):
            continue
        index = name[len(JAVA_OPT_PREFIX) :]
        if not index.isdigit():
            raise EntrypointError(
                f"{name} is not a Spark executor option variable: Spark numbers them {JAVA_OPT_PREFIX}0, "
                f"{JAVA_OPT_PREFIX}1, ...; rename or unset it"
            )
        numbered.append((int(index), value))
    return [value for _, value in sorted(numbered)]


def classpath(env: Mapping[str, str]) -> str:
    """The executor's class path: Spark's conf directory, Hadoop's, extra entries, then Spark's jars.

    Order as in Spark's image: ``SPARK_CONF_DIR`` (or ``$SPARK_HOME/conf``), ``HADOOP_CONF_DIR``,
    ``SPARK_CLASSPATH`` (``spark.executor.extraClassPath``), ``$SPARK_HOME/jars/*``,
    ``SPARK_EXTRA_CLASSPATH``, ``SPARK_DIST_CLASSPATH``. Unset or empty entries are left out.
    """
    home = spark_home(env)
    parts = [
        env.get("SPARK_CONF_DIR") or f"{home}/conf",
        env.get("HADOOP_CONF_DIR", ""),
        env.get("SPARK_CLASSPATH", ""),
        f"{home}/jars/*",
        env.get("SPARK_EXTRA_CLASSPATH", ""),
        env.get("SPARK_DIST_CLASSPATH", ""),
    ]
    return ":".join(p for p in parts if p)


def executor_argv(env: Mapping[str, str]) -> list[str]:
    """The command line of a Spark executor described by ``env`` (see :data:`EXECUTOR_ENV`).

    Raises :class:`EntrypointError` naming every missing variable.
    """
    required = [*EXECUTOR_ENV, MEMORY_ENV]
    missing = [name for name in required if not env.get(name)]
    if missing:
        raise EntrypointError(
            f"'executor' needs {', '.join(missing)} in the environment. Spark sets these on the executor pods "
            "it creates; this container was started as an executor some other way. To run a notebook or a "
            "command instead, give that command as the container's arguments."
        )
    memory = env[MEMORY_ENV]
    if not _MEMORY.match(memory):
        raise EntrypointError(f"{MEMORY_ENV}={memory!r} is not a JVM heap size such as 1024m or 2g")
    argv = [
        java_binary(env),
        *java_options(env),
        f"-Xms{memory}",
        f"-Xmx{memory}",
        "-cp",
        classpath(env),
        EXECUTOR_BACKEND,
    ]
    for name, option in EXECUTOR_ENV.items():
        argv += [option, env[name]]
    if env.get(POD_NAME_ENV):
        argv += ["--podName", env[POD_NAME_ENV]]
    return argv


def driver_argv(args: Sequence[str], env: Mapping[str, str]) -> list[str]:
    """``spark-submit`` in client mode inside a cluster-mode driver pod; ``args`` are what Spark passed after ``driver``."""
    address = env.get(DRIVER_BIND_ENV)
    if not address:
        raise EntrypointError(
            f"'driver' needs {DRIVER_BIND_ENV} (the pod's IP), which Spark sets on the driver pods of "
            "cluster-mode spark-submit; to submit a job from here, run spark-submit itself"
        )
    if not args:
        raise EntrypointError("'driver' needs spark-submit's arguments after it (Spark passes --properties-file ...)")
    return [
        f"{spark_home(env)}/bin/spark-submit",
        "--conf",
        f"spark.driver.bindAddress={address}",
        # Executors of this job then know the driver pod's address.
        "--conf",
        f"spark.executorEnv.SPARK_DRIVER_POD_IP={address}",
        "--deploy-mode",
        "client",
        *args,
    ]


def container_argv(args: Sequence[str], env: Mapping[str, str]) -> list[str]:
    """What the container runs for its arguments ``args`` (the module docstring lists the cases)."""
    if not args:
        raise EntrypointError(
            "no command given: pass 'executor', 'driver ...' or a command such as jupyterhub-singleuser"
        )
    mode, rest = args[0], list(args[1:])
    if mode == "executor":
        if rest:
            raise EntrypointError(f"'executor' takes no arguments (Spark passes none), got {rest}")
        return executor_argv(env)
    if mode == "driver":
        return driver_argv(rest, env)
    return list(args)


def missing_user_warning(uid: int) -> str | None:
    """A warning when ``uid`` has no passwd entry (Hadoop's login inside Spark then fails), else None."""
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return (
            f"occam entrypoint: warning: uid {uid} has no /etc/passwd entry, and Spark's Hadoop login may fail; "
            "run the container as the image's user (uid 1000) or set runAsUser: 1000"
        )
    return None


def main(argv: Sequence[str] | None = None) -> NoReturn:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        command = container_argv(args, os.environ)
    except EntrypointError as e:
        print(f"occam entrypoint: {e}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None
    warning = missing_user_warning(os.getuid())
    if warning and args[0] in ("executor", "driver"):
        print(warning, file=sys.stderr)
    try:
        os.execvp(command[0], command)
    except OSError as e:
        print(f"occam entrypoint: cannot run {command[0]!r}: {e.strerror}", file=sys.stderr)
        raise SystemExit(127 if isinstance(e, FileNotFoundError) else 126) from None


if __name__ == "__main__":
    main()
