"""The image entrypoint's command builders (occam/executor_entrypoint.py) and the script itself, run for real.

The builders are pure functions of the environment; the end-to-end tests run the entrypoint script as the
image does (``python -I occam/executor_entrypoint.py ...``) in a subprocess, with ``true``/``env`` and
pyspark's own JVM class standing in for what the container would start.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from occam.executor_entrypoint import (
    EXECUTOR_BACKEND,
    EXIT_USAGE,
    EntrypointError,
    classpath,
    container_argv,
    driver_argv,
    executor_argv,
    java_options,
    missing_user_warning,
)

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "occam" / "executor_entrypoint.py"

#: What Spark 3.5 puts on an executor pod (BasicExecutorFeatureStep), trimmed to what the entrypoint reads.
EXECUTOR_POD_ENV = {
    "SPARK_HOME": "/opt/spark",
    "JAVA_HOME": "/usr/lib/jvm/default-java",
    "SPARK_DRIVER_URL": "spark://CoarseGrainedScheduler@10.0.0.5:7078",
    "SPARK_EXECUTOR_ID": "3",
    "SPARK_EXECUTOR_CORES": "2",
    "SPARK_EXECUTOR_MEMORY": "1024m",
    "SPARK_APPLICATION_ID": "spark-application-1700000000000",
    "SPARK_EXECUTOR_POD_IP": "10.0.1.7",
    "SPARK_RESOURCE_PROFILE_ID": "0",
    "SPARK_EXECUTOR_POD_NAME": "occam-abc-exec-3",
    "SPARK_CONF_DIR": "/opt/spark/conf",
    "SPARK_JAVA_OPT_0": "-Dspark.driver.port=7078",
    "SPARK_JAVA_OPT_1": "-Dspark.authenticate=true",
}


def option(argv: list[str], name: str) -> str:
    """The value after ``name`` in ``argv``."""
    return argv[argv.index(name) + 1]


def test_executor_command_runs_the_kubernetes_backend_with_every_pod_variable() -> None:
    argv = executor_argv(EXECUTOR_POD_ENV)
    assert argv[0] == "/usr/lib/jvm/default-java/bin/java"
    assert EXECUTOR_BACKEND in argv
    assert option(argv, "--driver-url") == "spark://CoarseGrainedScheduler@10.0.0.5:7078"
    assert option(argv, "--executor-id") == "3"
    assert option(argv, "--cores") == "2"
    assert option(argv, "--app-id") == "spark-application-1700000000000"
    assert option(argv, "--hostname") == "10.0.1.7"
    assert option(argv, "--resourceProfileId") == "0"
    assert option(argv, "--podName") == "occam-abc-exec-3"
    assert "-Xms1024m" in argv and "-Xmx1024m" in argv
    # JVM options come before the main class, backend options after it.
    main = argv.index(EXECUTOR_BACKEND)
    assert argv.index("-Dspark.driver.port=7078") < main and argv.index("--driver-url") > main


def test_java_options_keep_spark_numeric_order_past_ten() -> None:
    env = {f"SPARK_JAVA_OPT_{i}": f"-Dopt{i}" for i in (10, 2, 0, 1, 9)}
    assert java_options(env) == ["-Dopt0", "-Dopt1", "-Dopt2", "-Dopt9", "-Dopt10"]


def test_java_option_variable_without_a_number_is_refused() -> None:
    with pytest.raises(EntrypointError, match="SPARK_JAVA_OPT_X.*rename or unset"):
        java_options({"SPARK_JAVA_OPT_X": "-Dx"})


def test_classpath_puts_conf_first_and_spark_jars_before_extra_entries() -> None:
    env = {
        "SPARK_HOME": "/opt/spark/",
        "SPARK_CLASSPATH": "/extra/user.jar",
        "SPARK_EXTRA_CLASSPATH": "/more/*",
        "HADOOP_CONF_DIR": "/etc/hadoop",
    }
    assert classpath(env) == "/opt/spark/conf:/etc/hadoop:/extra/user.jar:/opt/spark/jars/*:/more/*"
    assert classpath({"SPARK_HOME": "/s", "SPARK_CONF_DIR": "/c"}) == "/c:/s/jars/*"


def test_java_from_path_without_java_home() -> None:
    env = {k: v for k, v in EXECUTOR_POD_ENV.items() if k != "JAVA_HOME"}
    assert executor_argv(env)[0] == "java"


def test_pod_name_is_optional() -> None:
    env = {k: v for k, v in EXECUTOR_POD_ENV.items() if k != "SPARK_EXECUTOR_POD_NAME"}
    assert "--podName" not in executor_argv(env)


def test_executor_without_spark_pod_variables_names_all_missing() -> None:
    env = {"SPARK_HOME": "/opt/spark", "SPARK_EXECUTOR_ID": "1"}
    with pytest.raises(EntrypointError) as info:
        executor_argv(env)
    message = str(info.value)
    for name in ("SPARK_DRIVER_URL", "SPARK_EXECUTOR_CORES", "SPARK_EXECUTOR_MEMORY", "SPARK_EXECUTOR_POD_IP"):
        assert name in message
    assert "SPARK_EXECUTOR_ID" not in message.split("in the environment")[0]
    assert "give that command as the container's arguments" in message


def test_executor_memory_must_be_a_heap_size() -> None:
    with pytest.raises(EntrypointError, match="JVM heap size"):
        executor_argv({**EXECUTOR_POD_ENV, "SPARK_EXECUTOR_MEMORY": "1 GB"})


def test_missing_spark_home_says_where_it_is() -> None:
    env = {k: v for k, v in EXECUTOR_POD_ENV.items() if k != "SPARK_HOME"}
    with pytest.raises(EntrypointError, match="SPARK_HOME is not set.*pyspark"):
        executor_argv(env)


def test_driver_runs_spark_submit_in_client_mode_bound_to_the_pod_ip() -> None:
    args = ["--properties-file", "/opt/spark/conf/spark.properties", "--class", "org.example.Main", "local:///app.py"]
    argv = driver_argv(args, {"SPARK_HOME": "/opt/spark", "SPARK_DRIVER_BIND_ADDRESS": "10.0.0.9"})
    assert argv[0] == "/opt/spark/bin/spark-submit"
    assert option(argv, "--deploy-mode") == "client"
    assert "spark.driver.bindAddress=10.0.0.9" in argv
    assert "spark.executorEnv.SPARK_DRIVER_POD_IP=10.0.0.9" in argv
    assert argv[-len(args) :] == args


def test_driver_needs_the_bind_address_and_arguments() -> None:
    with pytest.raises(EntrypointError, match="SPARK_DRIVER_BIND_ADDRESS"):
        driver_argv(["x.py"], {"SPARK_HOME": "/s"})
    with pytest.raises(EntrypointError, match="spark-submit's arguments"):
        driver_argv([], {"SPARK_HOME": "/s", "SPARK_DRIVER_BIND_ADDRESS": "10.0.0.9"})


def test_other_commands_pass_through_unchanged() -> None:
    argv = ["jupyterhub-singleuser", "--ip=0.0.0.0", "--port=8888"]
    assert container_argv(argv, {}) == argv


def test_dispatch_and_its_errors() -> None:
    assert container_argv(["executor"], EXECUTOR_POD_ENV)[-2:] == ["--podName", "occam-abc-exec-3"]
    with pytest.raises(EntrypointError, match="takes no arguments"):
        container_argv(["executor", "extra"], EXECUTOR_POD_ENV)
    with pytest.raises(EntrypointError, match="no command given"):
        container_argv([], {})


def test_missing_passwd_entry_is_warned_about() -> None:
    assert missing_user_warning(os.getuid()) is None
    warning = missing_user_warning(2**31 - 7)
    assert warning is not None and "runAsUser: 1000" in warning


def run_script(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The entrypoint as the image runs it: a plain script under ``python -I``."""
    return subprocess.run(
        [sys.executable, "-I", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_script_execs_a_command_keeping_the_environment() -> None:
    result = run_script(["env"], {"PATH": os.environ["PATH"], "OCCAM_MARK": "kept"})
    assert result.returncode == 0, result.stderr
    assert "OCCAM_MARK=kept" in result.stdout.splitlines()


def test_script_reports_bad_use_with_a_usage_exit_status() -> None:
    result = run_script(["executor"], {"PATH": os.environ["PATH"]})
    assert result.returncode == EXIT_USAGE
    assert result.stderr.startswith("occam entrypoint: 'executor' needs SPARK_DRIVER_URL")
    missing = run_script(["no-such-command-occam"], {"PATH": os.environ["PATH"]})
    assert missing.returncode == 127
    assert "cannot run 'no-such-command-occam'" in missing.stderr
