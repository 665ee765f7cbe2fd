"""``occam submit`` and ``occam conf``: the request from the command line, the backend, and the runner."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

from occam import config
from occam.batch.conf import embedded_submit_conf, kubernetes_submit_conf, spark_defaults_text
from occam.batch.job import Job
from occam.errors import ConfigError
from occam.spec import ClusterSpec, make_spec

if TYPE_CHECKING:
    from occam.batch.kubernetes import JobApi
    from occam.kubernetes.settings import KubernetesSettings

#: The account a Kubernetes job's driver pod runs as, when ``--service-account`` is not given.
DRIVER_SERVICE_ACCOUNT_ENV = "OCCAM_K8S_DRIVER_SERVICE_ACCOUNT"

BATCH_BACKENDS = ("embedded", "kubernetes")


def job_spec(
    executors: int,
    *,
    gpu: bool = False,
    cores: int | None = None,
    memory: str | None = None,
    timeout: float | None = None,
    name: str | None = None,
) -> ClusterSpec:
    """The job's executors, checked like ``start_cluster``'s (same defaults and ``OCCAM_*`` variables)."""
    return make_spec(
        executors,
        cores=config.get("cores", cores),
        memory=config.get("memory", memory),
        gpu=gpu,
        timeout=config.get("timeout", timeout),
        name=name,
    )


def resolve_backend(name: str | None, environ: Mapping[str, str] | None = None) -> str:
    """``embedded`` or ``kubernetes``; ``auto`` (the default, or ``OCCAM_BACKEND``) as ``start_cluster`` picks."""
    from occam.backends import select_backend

    chosen = select_backend(config.get("backend", name), environ).name
    if chosen not in BATCH_BACKENDS:
        raise ConfigError(f"batch jobs run on {' or '.join(BATCH_BACKENDS)}, not on the {chosen} backend")
    return chosen


def kubernetes_context(environ: Mapping[str, str]) -> tuple[KubernetesSettings, JobApi]:
    """Settings from ``OCCAM_K8S_*`` and an API client with the caller's credentials.

    Outside a notebook pod only ``OCCAM_K8S_NAMESPACE`` and ``OCCAM_K8S_EXECUTOR_IMAGE`` are needed; the
    API address defaults to the kubeconfig's.
    """
    from occam.batch.kubernetes import JobApi
    from occam.kubernetes.settings import API_SERVER_ENV, NAMESPACE_ENV, POD_IP_ENV, POD_NAME_ENV, settings_from_env

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
    from occam.kubernetes.settings import POD_NAME_ENV

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


def submit(
    job: Job,
    spec: ClusterSpec,
    *,
    backend: str | None = None,
    detach: bool = False,
    keep: bool = False,
    service_account: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Run ``job`` as a batch job on ``spec.n`` executors; return its exit status (0 once submitted, detached)."""
    env = os.environ if environ is None else environ
    chosen = resolve_backend(backend, env)
    if chosen == "embedded":
        if detach:
            raise ConfigError("--detach works on Kubernetes only: an embedded job lives as long as occam submit")
        from occam.batch.embedded import run_embedded

        return run_embedded(job, spec)
    from occam.batch.kubernetes import run_kubernetes

    settings, api = kubernetes_context(env)
    try:
        account = driver_service_account(service_account, env, api)
        return run_kubernetes(job, spec, settings, api, service_account=account, detach=detach, keep=keep)
    finally:
        api.close()


def conf_text(
    spec: ClusterSpec,
    *,
    backend: str | None = None,
    service_account: str | None = None,
    template_dir: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> str:
    """``spark-defaults.conf`` text for plain spark-submit: the properties ``occam submit`` would pass.

    Never holds a secret. On Kubernetes the pod templates are written to ``template_dir`` (default
    ``./occam-templates``), and the comments say which Secret and ConfigMap the job needs.
    """
    env = os.environ if environ is None else environ
    chosen = resolve_backend(backend, env)
    if chosen == "embedded":
        marker = "/OCCAM-WORK-DIR"
        conf = {k: v for k, v in embedded_submit_conf(spec, work_dir=marker).items() if marker not in v}
        header = [
            f"Spark properties of an embedded Occam job ({spec.n} executors), for spark-submit --properties-file.",
            "occam submit also gives each job a private work dir (spark.local.dir, java.io.tmpdir) and a",
            "reaper that cleans up if it dies; with plain spark-submit Spark uses the system temp dir.",
        ]
        return spark_defaults_text(conf, header)
    return _kubernetes_conf_text(spec, service_account, template_dir or "occam-templates", env)


def _kubernetes_conf_text(
    spec: ClusterSpec, service_account: str | None, template_dir: str, environ: Mapping[str, str]
) -> str:
    import json

    from occam.batch.objects import AUTH_MOUNT, DRIVER_KEY, JOB_DIR, driver_pod_template, job_configmap_name
    from occam.kubernetes import objects

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
