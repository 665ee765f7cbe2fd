"""A model service on Kubernetes: a Deployment and a ClusterIP Service in the notebook's own namespace.

The objects are :mod:`occam.kubernetes.serving`'s, created with the notebook's own service account (the
notebook's Role allows exactly that, ``spawner.namespace.NOTEBOOK_RULES``): the token in a Secret (a file
in the pod, never in its spec), the Occam image reading the model read-only from the shared work volume,
requests equal to limits so that the namespace's quota counts the pod. Unless kept, every object is owned by
the notebook pod, so Kubernetes deletes the service with the notebook; ``stop()`` and the kernel's exit delete
it sooner, and wait until its pod is gone. A kept service, when the hub sets an idle limit
(``serve_kept_idle_minutes``, the chart's ``occam.serving.keptIdleMinutes``), is a Job instead of a Deployment:
its process exits after that long with no request, and Kubernetes deletes the Job, its pod, Service and Secret
(``occam.kubernetes.serving.kept_job``); without a limit it is a Deployment that lives until ``stop_service``.

Who reaches it: the namespace's NetworkPolicies let only the student's own notebook pod connect to the
service's pod (``spawner.network_policy``); a browser goes through the notebook's jupyter-server-proxy
(``<prefix>proxy/absolute/<service>:80/``), behind JupyterHub's own login (the owner, or whom the owner
shares the server with); every request needs the service's token besides.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import time
import urllib.request
import weakref
from collections.abc import Callable, Mapping
from typing import Any

from occam import config
from occam.backends.base import ModelServiceRequest
from occam.contract import JUPYTERHUB_SERVICE_PREFIX_ENV
from occam.errors import ConfigError, ServiceStartError
from occam.kubernetes import pods, serving
from occam.kubernetes.api import NamespaceApi
from occam.kubernetes.settings import KubernetesSettings, settings_from_env

POLL_SECONDS = 0.5
#: How long ``serve`` waits, once the pod is Ready, for its Service to route to it (kube-proxy's next sync).
ROUTE_TIMEOUT_SECONDS = 60.0
#: How long ``stop()`` waits for the pod to go: its grace period (30 s) and some.
STOP_TIMEOUT_SECONDS = 60.0

_live: weakref.WeakSet[ModelDeployment] = weakref.WeakSet()


@atexit.register
def _stop_all_at_exit() -> None:
    for service in list(_live):
        with contextlib.suppress(Exception):  # the notebook pod's end deletes them anyway (owner references)
            service.stop()


def pod_ready(pod: Mapping[str, Any]) -> bool:
    """Whether the pod is Ready and not being deleted."""
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def replica_failure(deployment: Mapping[str, Any] | None) -> str | None:
    """Why the Deployment's ReplicaSet could not make its pod (e.g. the quota refused it), or why a kept
    service's Job failed, else None."""
    for condition in ((deployment or {}).get("status") or {}).get("conditions") or []:
        if condition.get("type") in ("ReplicaFailure", "Failed") and condition.get("status") == "True":
            return str(condition.get("message") or condition.get("reason") or "no reason given")
    return None


def creation_refused(events: list[dict[str, Any]], uid: str) -> str | None:
    """The last ``FailedCreate`` event of the Job with ``uid`` (e.g. the quota refused its pod), else None; a
    Job of the same name before it (its events outlive it) is not this one."""
    refused = [
        e for e in events if e.get("reason") == "FailedCreate" and (e.get("involvedObject") or {}).get("uid") == uid
    ]
    return str(refused[-1].get("message") or "the pod was refused") if refused else None


def _wait(what: str, check: Callable[[], bool], timeout: float, then: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise ServiceStartError(f"timed out after {timeout:.0f} s waiting for {what}; {then()}")
        time.sleep(POLL_SECONDS)


class ModelDeployment:
    """A model service's Deployment, Service and Secret (all named ``name``) in ``settings.namespace``."""

    def __init__(self, settings: KubernetesSettings, api: NamespaceApi, *, model: str, name: str, base_path: str):
        self.settings = settings
        self.name = name
        self.base_path = base_path
        self._api = api
        self._selector = serving.selector(serving.serving_labels(settings, model, name))
        self._stopped = False

    @property
    def url(self) -> str:
        """The Service's address from a pod of the namespace: ``http://<name>.<namespace>.svc:80<base_path>``."""
        return serving.in_cluster_url(self.settings, self.name, self.base_path)

    def pods(self) -> list[dict[str, Any]]:
        """The service's pods, as the API returns them."""
        return self._api.pods(self._selector)

    @property
    def running(self) -> bool:
        return not self._stopped and any(pod_ready(p) for p in self.pods())

    def log(self) -> str:
        """The log of the service's pod ("" when it has none yet)."""
        try:
            found = self.pods()
            return self._api.pod_log(found[0]["metadata"]["name"]) if found else ""
        except Exception as exc:
            return f"(could not read the service's log: {exc})"

    def _controller_problem(self) -> str | None:
        deployment = self._api.read_deployment(self.name)
        if deployment is not None:
            return replica_failure(deployment)
        job = self._api.read_job(self.name)
        if job is None:
            return None
        uid = str(job["metadata"].get("uid"))
        return replica_failure(job) or creation_refused(self._api.pod_events([self.name]), uid)

    def wait_ready(self, timeout: float, ref: str) -> None:
        """Wait until the service's pod is Ready; fail at once when it cannot start (quota, image, crash)."""

        def ready() -> bool:
            found = self.pods()
            if any(pod_ready(p) for p in found):
                return True
            problem = pods.start_problem(found, kind="model service pod") or self._controller_problem()
            if problem:
                raise ServiceStartError(
                    f"the model service {self.name} for {ref} cannot start: {problem}\n{self.log()}"
                )
            return False

        _wait(
            f"the pod of model service {self.name} ({ref}) to be Ready",
            ready,
            timeout,
            lambda: "(OCCAM_SERVE_TIMEOUT, or serve(..., timeout=)); its pods:\n"
            + pods.pod_summary(self.pods())
            + f"\n{self.log()}",
        )

    def wait_routed(self, metadata_path: str, token: str, timeout: float, ref: str) -> None:
        """Wait until the Service answers at :attr:`url` (``metadata_path``, with the service's token).

        A Ready pod is reachable through its Service only once the cluster's service proxy (kube-proxy) has
        written the new endpoint into the node's rules, a moment later (seconds on a busy node); until then a
        connection to the cluster IP is refused or goes nowhere. ``serve`` returns when a request would work.
        """
        request = urllib.request.Request(
            self.url + metadata_path, headers={"Authorization": f"token {token}"}, method="GET"
        )

        def answers() -> bool:
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    return bool(response.status == 200)
            except OSError:  # refused, unroutable, or not our app yet (URLError and HTTPError are OSErrors)
                return False

        _wait(
            f"the Service {self.url} of model service {self.name} ({ref}) to route to its Ready pod",
            answers,
            timeout,
            lambda: "the cluster's service proxy (kube-proxy) has not routed it; ask the course admin whether "
            "kube-proxy runs on the node",
        )

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        """Delete the Deployment (or a kept service's Job), Service and Secret, and wait until the pod and the
        Deployment or Job are gone (so the same version can be served again at once). Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        _live.discard(self)
        try:
            self._api.delete_model_service(self.name)
            _wait(
                f"the pod and Deployment or Job of model service {self.name} to go",
                lambda: not self.pods()
                and self._api.read_deployment(self.name) is None
                and self._api.read_job(self.name) is None,
                timeout,
                lambda: "Kubernetes deletes it in the background",
            )
        finally:
            self._api.close()


def kept_idle_minutes(environ: Mapping[str, str]) -> float:
    """``serve_kept_idle_minutes`` (``OCCAM_SERVE_KEPT_IDLE_MINUTES``): 0 (never) or more minutes."""
    minutes = config.get("serve_kept_idle_minutes", environ=environ)
    if isinstance(minutes, bool) or not isinstance(minutes, int | float) or not minutes >= 0:
        raise ConfigError(
            f"serve_kept_idle_minutes={minutes!r} (OCCAM_SERVE_KEPT_IDLE_MINUTES) must be 0 (never) or more minutes"
        )
    return float(minutes)


def namespace_context(environ: Mapping[str, str]) -> tuple[KubernetesSettings, NamespaceApi]:
    """The notebook pod's settings (``OCCAM_K8S_*``) and an API client with its service account."""
    settings = settings_from_env(environ)
    return settings, NamespaceApi(settings.namespace)


def start_model_deployment(
    request: ModelServiceRequest,
    environ: Mapping[str, str] | None = None,
    *,
    settings: KubernetesSettings | None = None,
    api: NamespaceApi | None = None,
) -> ModelDeployment:
    """Create the service's Secret, Deployment and Service and wait until its pod is Ready.

    ``settings`` and ``api`` default to the notebook pod's own (``OCCAM_K8S_*`` in ``environ``, its service
    account); tests pass a student's. On any failure nothing is left behind.
    """
    env = os.environ if environ is None else environ
    if settings is None or api is None:
        settings, api = namespace_context(env)
    name = serving.service_name(request.model, request.version)
    base_path = serving.proxy_base(env.get(JUPYTERHUB_SERVICE_PREFIX_ENV), name)
    try:
        idle_minutes = kept_idle_minutes(env) if request.keep else 0.0
        cpu = str(config.get("serve_cpu", environ=env))
        memory = str(config.get("serve_memory", environ=env))
        model, version, model_dir = request.model, request.version, request.model_dir
        runner = (
            serving.kept_job(
                settings, model=model, version=version, model_dir=model_dir, idle_minutes=idle_minutes, cpu=cpu,
                memory=memory, max_bytes=request.max_bytes, base_path=base_path,
            )
            if idle_minutes
            else serving.deployment(
                settings, model=model, version=version, model_dir=model_dir, cpu=cpu, memory=memory,
                max_bytes=request.max_bytes, keep=request.keep, base_path=base_path,
            )
        )  # fmt: skip
        secret = serving.token_secret(settings, request.model, request.version, request.token, keep=request.keep)
        front = serving.cluster_ip_service(settings, model=request.model, version=request.version, keep=request.keep)
        if api.read_deployment(name) is not None or api.read_job(name) is not None:
            raise ConfigError(
                f"a model service {name} already runs in namespace {settings.namespace} (a kept one, or another "
                f"notebook's, or a kept one that has just ended idle and goes within a minute): use it, or stop it "
                f"first with occam.models.stop_service({request.ref!r})"
            )
    except BaseException:
        api.close()
        raise
    service = ModelDeployment(settings, api, model=request.model, name=name, base_path=base_path)
    try:
        if idle_minutes:
            api.create_kept_model_service(secret, runner, front)
        else:
            api.create_model_service(secret, runner, front)
        service.wait_ready(request.timeout, request.ref)
        if env.get("KUBERNETES_SERVICE_HOST"):  # in a pod, where the Service's name resolves and routes
            service.wait_routed(request.metadata_path, request.token, ROUTE_TIMEOUT_SECONDS, request.ref)
    except BaseException:
        with contextlib.suppress(Exception):  # the first error is the one to see
            service.stop()
        raise
    if not request.keep:
        _live.add(service)
    return service


def stop_model_deployment(model: str, version: int, environ: Mapping[str, str] | None = None) -> None:
    """Delete the service of ``model`` version ``version`` in the notebook's namespace and wait for its pod."""
    settings, api = namespace_context(os.environ if environ is None else environ)
    name = serving.service_name(model, version)
    ModelDeployment(settings, api, model=model, name=name, base_path="").stop()
