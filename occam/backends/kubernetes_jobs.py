"""Run a batch job on Kubernetes in cluster mode: spark-submit creates a driver pod, which creates its executors.

Steps: check the namespace's quota for the driver and the executors; write the pod templates; run
spark-submit (which creates the driver pod, Spark's Service and conf ConfigMap, and returns); create the
job's ConfigMap (the script) and Secret (the RPC key), both owned by the driver pod (see
:mod:`occam.batch.objects`); then, unless detached, wait for the driver to start, stream its log, and
return its exit code, deleting the driver pod (and so everything of the job) at the end.

Everything runs with the caller's own credentials (``KUBECONFIG``, or the notebook pod's service
account): the student's Role (pods, pods/log, services, configmaps, secrets, events) is enough.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from typing import Any

from occam.batch.conf import log4j_properties, spark_defaults_text, spark_submit_argv
from occam.batch.job import Job
from occam.contract import (
    API_SERVER_ENV,
    DRIVER_SERVICE_ACCOUNT_ENV,
    NAMESPACE_ENV,
    POD_IP_ENV,
    POD_NAME_ENV,
)
from occam.errors import ClusterStartError, ConfigError
from occam.kubernetes import objects, pods
from occam.kubernetes.api import NamespaceApi
from occam.kubernetes.job_conf import kubernetes_app_resource, kubernetes_submit_conf
from occam.kubernetes.job_objects import (
    AUTH_MOUNT,
    DRIVER_CONTAINER_NAME,
    DRIVER_KEY,
    JOB_DIR,
    MAX_SCRIPT_BYTES,
    driver_exit_code,
    driver_pod_name,
    driver_pod_template,
    driver_started,
    job_auth_secret,
    job_configmap,
    job_configmap_name,
)
from occam.kubernetes.quota import check_fits_quota
from occam.kubernetes.settings import KubernetesSettings, settings_from_env
from occam.spec import ClusterSpec
from occam.validation import check_java

POLL_SECONDS = 1.0
#: How long to wait for the driver's exit code once its log has ended.
EXIT_WAIT_SECONDS = 120.0


class JobApi(NamespaceApi):
    """The namespace calls of a batch job, beside those of the client-mode backend."""

    def read_pod(self, name: str) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        try:
            pod: dict[str, Any] = self._call("read a pod", self.core.read_namespaced_pod, name, self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return pod

    def create_configmap(self, body: dict[str, Any]) -> None:
        self._call("create a ConfigMap", self.core.create_namespaced_config_map, self.namespace, body)

    def delete_pod(self, name: str) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self._call("delete a pod", self.core.delete_namespaced_pod, name, self.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise

    def follow_log(self, name: str, container: str) -> Iterator[str]:
        """The container's log lines as they come, until it ends (no read timeout: a job may be quiet for long)."""
        response: Any = self.core.read_namespaced_pod_log(
            name, self.namespace, container=container, follow=True, _preload_content=False
        )
        try:
            pending = b""
            for chunk in response.stream(4096):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    yield line.decode(errors="replace")
            if pending:
                yield pending.decode(errors="replace")
        finally:
            response.release_conn()


def check_job_fits_quota(api: NamespaceApi, spec: ClusterSpec, settings: KubernetesSettings) -> None:
    """The driver pod (sized like an executor, no GPU) and the executors must fit the namespace's quota."""
    quotas, limit_ranges = api.resource_quotas(), api.limit_ranges()
    usage = pods.usage_by_cluster(api.occam_pods(), settings.gpu_resource)
    check_fits_quota(
        dataclasses.replace(spec, n=spec.n + 1, gpu=False),
        quotas,
        limit_ranges,
        usage,
        gpu_resource=settings.gpu_resource,
    )
    if spec.gpu:
        check_fits_quota(spec, quotas, limit_ranges, usage, gpu_resource=settings.gpu_resource)


def run_kubernetes(
    job: Job,
    spec: ClusterSpec,
    settings: KubernetesSettings,
    api: JobApi,
    *,
    service_account: str,
    detach: bool = False,
    keep: bool = False,
    python: str | None = None,
    spark_log_level: str = "warn",
) -> int:
    """Submit ``job``; return 0 once submitted when ``detach``, else the driver's exit code."""
    check_java("spark-submit")
    source = job.source()
    if len(source.encode()) > MAX_SCRIPT_BYTES:
        raise ConfigError(
            f"{job.script}: {len(source.encode())} bytes is more than a ConfigMap holds (1 MiB); put the code "
            "in a module inside the image and run it with -m"
        )
    check_job_fits_quota(api, spec, settings)
    driver = driver_pod_name(spec)
    if api.read_pod(driver) is not None:
        raise ConfigError(
            f"a job named {spec.name} already has a driver pod ({driver}); choose another --name, or delete it "
            f"with occam stop {objects.label_value(spec.name)}"
        )
    try:
        with tempfile.TemporaryDirectory(prefix=f"{spec.name}-") as work_dir:
            _submit(
                job,
                spec,
                settings,
                service_account=service_account,
                python=python,
                work_dir=work_dir,
                level=spark_log_level,
            )
    except BaseException:
        # spark-submit may have created the driver pod before it failed (or was interrupted): a pod that will
        # never get its script must not hold the namespace's quota.
        with contextlib.suppress(Exception):
            api.delete_pod(driver)
        raise
    pod = api.read_pod(driver)
    if pod is None:
        raise ClusterStartError(f"spark-submit succeeded but no driver pod {driver} is in namespace {api.namespace}")
    try:
        api.create_configmap(job_configmap(spec, settings, file_name=job.file_name, source=source, driver_pod=pod))
        api.create_secret(job_auth_secret(spec, settings, objects.new_auth_secret_value(), driver_pod=pod))
    except BaseException:
        api.delete_pod(driver)
        raise
    stop_hint = f"occam stop {objects.label_value(spec.name)}"
    if detach:
        print(
            f"submitted job {spec.name}: driver pod {driver} in namespace {api.namespace}; follow it with "
            f"kubectl logs -f {driver}, delete it with {stop_hint}",
            flush=True,
        )
        return 0
    try:
        code = follow(api, driver, spec.timeout)
    except KeyboardInterrupt:
        print(f"\noccam: stopped following; job {spec.name} keeps running. Delete it with {stop_hint}", file=sys.stderr)
        return 130
    if not keep:
        api.delete_pod(driver)
    return code


def _submit(
    job: Job,
    spec: ClusterSpec,
    settings: KubernetesSettings,
    *,
    service_account: str,
    python: str | None,
    work_dir: str,
    level: str,
) -> None:
    import pyspark

    driver_template = os.path.join(work_dir, "driver-pod-template.json")
    executor_template = os.path.join(work_dir, "executor-pod-template.json")
    with open(driver_template, "w") as fh:
        json.dump(driver_pod_template(spec, settings, service_account=service_account), fh)
    with open(executor_template, "w") as fh:
        json.dump(objects.executor_pod_template(spec, settings), fh)
    os.makedirs(os.path.join(work_dir, "conf"))
    with open(os.path.join(work_dir, "conf", "log4j2.properties"), "w") as fh:
        fh.write(log4j_properties(level))
    conf = kubernetes_submit_conf(
        spec,
        settings,
        python=python or sys.executable,
        service_account=service_account,
        executor_template=executor_template,
        driver_template=driver_template,
        environ=os.environ,
    )
    spark_home = os.path.dirname(pyspark.__file__)
    argv = spark_submit_argv(
        os.path.join(spark_home, "bin", "spark-submit"), conf, kubernetes_app_resource(job.file_name), job.args
    )
    env = {**os.environ, "SPARK_HOME": spark_home, "SPARK_CONF_DIR": os.path.join(work_dir, "conf")}
    try:
        result = subprocess.run(
            argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=spec.timeout
        )
    except subprocess.TimeoutExpired:
        raise ClusterStartError(
            f"spark-submit did not create the driver pod within {spec.timeout:.0f} s; check that the Kubernetes "
            f"API at {settings.api_server} is reachable, or raise --timeout"
        ) from None
    if result.returncode != 0 and "cannot patch resource" in result.stdout:
        raise ConfigError(
            "spark-submit was refused 'patch' on the driver's Service or ConfigMap in namespace "
            f"{settings.namespace}: Spark applies them server-side, so your Role must allow patch on services "
            "and configmaps; ask your course admin to update Occam's spawner (its Role grants it)"
        )
    if result.returncode != 0:
        raise ClusterStartError(
            f"spark-submit could not create the driver pod (exit status {result.returncode}); its output:\n"
            + result.stdout[-4000:]
        )


def follow(api: JobApi, driver: str, timeout: float) -> int:
    """Wait for the driver to start, print its log as it comes, and return its exit code."""
    deadline = time.monotonic() + timeout
    while True:
        pod = api.read_pod(driver)
        if pod is None:
            raise ClusterStartError(f"the driver pod {driver} was deleted before it started")
        if driver_started(pod):
            break
        problem = pods.start_problem([pod])
        if problem:
            api.delete_pod(driver)
            raise ClusterStartError(problem.replace("executor pod", "driver pod"))
        if time.monotonic() > deadline:
            raise ClusterStartError(
                f"the driver pod {driver} did not start within {timeout:.0f} s: {pods.pod_summary([pod])}. "
                f"It is left in place: read its events with kubectl describe pod {driver}, or raise --timeout"
            )
        time.sleep(POLL_SECONDS)
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        for line in api.follow_log(driver, DRIVER_CONTAINER_NAME):
            print(line, flush=True)
    except (ApiException, HTTPError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise ClusterStartError(
            f"cannot read the log of the driver pod {driver} ({reason}); the job goes on: follow it with "
            f"kubectl logs -f {driver}, or delete it with kubectl delete pod {driver}"
        ) from None
    deadline = time.monotonic() + EXIT_WAIT_SECONDS
    while True:
        pod = api.read_pod(driver)
        code = 1 if pod is None else driver_exit_code(pod)
        if code is not None:
            return code
        if time.monotonic() > deadline:
            raise ClusterStartError(
                f"the driver pod {driver}'s log ended but it still runs after {EXIT_WAIT_SECONDS:.0f} s; "
                f"follow it with kubectl logs -f {driver}"
            )
        time.sleep(POLL_SECONDS)


def kubernetes_context(environ: Mapping[str, str]) -> tuple[KubernetesSettings, JobApi]:
    """Settings from ``OCCAM_K8S_*`` and an API client with the caller's credentials.

    Outside a notebook pod only ``OCCAM_K8S_NAMESPACE`` and ``OCCAM_K8S_EXECUTOR_IMAGE`` are needed; the
    API address defaults to the kubeconfig's.
    """
    namespace = environ.get(NAMESPACE_ENV, "").strip()
    if not namespace:
        raise ConfigError(
            f"{NAMESPACE_ENV} is not set: a Kubernetes job runs in your namespace. In a notebook started by "
            "OccamSpawner it is set for you; elsewhere set it (and KUBECONFIG), or use --backend embedded"
        )
    api = JobApi(namespace)
    settings = settings_from_env(
        environ,
        # The notebook pod's facts matter only to client mode; a job has its own driver pod.
        pod_name=environ.get(POD_NAME_ENV) or "occam-submit",
        pod_ip=environ.get(POD_IP_ENV) or "127.0.0.1",
        api_server=environ.get(API_SERVER_ENV) or api.host,
    )
    return settings, api


def driver_service_account(given: str | None, environ: Mapping[str, str], api: JobApi | None) -> str:
    """``--service-account``, else ``OCCAM_K8S_DRIVER_SERVICE_ACCOUNT``, else the notebook pod's own account."""
    if given:
        return given
    if environ.get(DRIVER_SERVICE_ACCOUNT_ENV):
        return environ[DRIVER_SERVICE_ACCOUNT_ENV]
    pod_name = environ.get(POD_NAME_ENV)
    if api is not None and pod_name:
        pod = api.read_pod(pod_name)
        account = ((pod or {}).get("spec") or {}).get("serviceAccountName")
        if account:
            return str(account)
    raise ConfigError(
        "the driver pod needs a service account allowed to create executor pods (your notebook's); pass "
        f"--service-account NAME or set {DRIVER_SERVICE_ACCOUNT_ENV}"
    )


def kubernetes_conf_text(
    spec: ClusterSpec, service_account: str | None, template_dir: str, environ: Mapping[str, str]
) -> str:
    """``spark-defaults.conf`` text of a Kubernetes job; the pod templates are written to ``template_dir``."""
    settings, api = kubernetes_context(environ)
    try:
        account = driver_service_account(service_account, environ, api)
    finally:
        api.close()
    template_dir = os.path.abspath(template_dir)
    os.makedirs(template_dir, exist_ok=True)
    driver_template = os.path.join(template_dir, "driver-pod-template.json")
    executor_template = os.path.join(template_dir, "executor-pod-template.json")
    with open(driver_template, "w") as fh:
        json.dump(driver_pod_template(spec, settings, service_account=account), fh, indent=2)
    with open(executor_template, "w") as fh:
        json.dump(objects.executor_pod_template(spec, settings), fh, indent=2)
    conf = kubernetes_submit_conf(
        spec,
        settings,
        python=sys.executable,
        service_account=account,
        executor_template=executor_template,
        driver_template=driver_template,
        environ=os.environ,
    )
    conf["spark.kubernetes.submission.waitAppCompletion"] = "true"  # plain spark-submit then waits for the job
    secret = objects.auth_secret_name(spec)
    header = [
        f"Spark properties of a Kubernetes Occam job {spec.name} ({spec.n} executors), cluster mode.",
        f"Pod templates written to {template_dir}.",
        "No secret is printed. Before spark-submit, the namespace needs (occam submit makes both, per job):",
        f"- Secret {secret}: key {objects.AUTH_SECRET_KEY} = base64 text of 32 random bytes (executors read it",
        f"  by reference), key {DRIVER_KEY} = those raw bytes (mounted in the driver at {AUTH_MOUNT});",
        f"- ConfigMap {job_configmap_name(spec)} holding your script, mounted in the driver at {JOB_DIR}:",
        f"  run spark-submit --properties-file THIS local://{JOB_DIR}/<script>.py",
    ]
    return spark_defaults_text(conf, header)
