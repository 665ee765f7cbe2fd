"""The Kubernetes backend: the notebook kernel is the Spark driver, executors are pods in its namespace.

Configured from the environment OccamSpawner sets in the notebook pod (``OCCAM_K8S_*``, see
:mod:`occam.kubernetes.settings`); the conf and objects come from the pure builders in
:mod:`occam.kubernetes`. Before anything is created the request is checked against the namespace's
ResourceQuotas and LimitRanges; while executors start, their pods are watched so that an unschedulable
pod or an image that cannot be pulled ends the wait at once.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from occam.backends.base import Backend, ModelServiceRequest
from occam.backends.driver import SparkDriver, check_java_and_no_active_context
from occam.backends.kubernetes_jobs import (
    driver_service_account,
    kubernetes_conf_text,
    kubernetes_context,
    run_kubernetes,
)
from occam.backends.kubernetes_serving import ModelDeployment, start_model_deployment, stop_model_deployment
from occam.backends.kubernetes_status import status_text, stop_clusters
from occam.contract import KUBERNETES_BACKEND, SHARED_PATH_CONF
from occam.errors import ClusterStartError
from occam.kubernetes import objects, pods
from occam.kubernetes.api import NamespaceApi
from occam.kubernetes.network import lone_rank_interfaces
from occam.kubernetes.quota import check_fits_quota
from occam.kubernetes.settings import KubernetesSettings, in_kubernetes_pod, settings_from_env
from occam.kubernetes.shared import unshared_path_problem
from occam.kubernetes.sparkconf import kubernetes_conf
from occam.spec import ClusterSpec

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from occam.batch.job import Submission


class KubernetesBackend(Backend):
    name = KUBERNETES_BACKEND
    priority = 10

    def __init__(
        self, spec: ClusterSpec, settings: KubernetesSettings | None = None, api: NamespaceApi | None = None
    ) -> None:
        super().__init__(spec)
        self._settings = settings
        self._api = api
        self.driver: SparkDriver | None = None

    @classmethod
    def detect(cls, environ: Mapping[str, str]) -> bool:
        return in_kubernetes_pod(environ)

    @property
    def settings(self) -> KubernetesSettings:
        if self._settings is None:
            self._settings = settings_from_env(os.environ)
        return self._settings

    @property
    def api(self) -> NamespaceApi:
        if self._api is None:
            self._api = NamespaceApi(self.settings.namespace)
        return self._api

    def check(self) -> None:
        check_java_and_no_active_context()
        self._check_quota(self.spec)

    def _check_quota(self, request: ClusterSpec) -> None:
        check_fits_quota(
            request,
            self.api.resource_quotas(),
            self.api.limit_ranges(),
            pods.usage_by_cluster(self.api.occam_pods(), self.settings.gpu_resource),
            gpu_resource=self.settings.gpu_resource,
        )

    def check_scale(self, n: int) -> None:
        running = [p for p in self.executor_pods() if (p.get("status") or {}).get("phase") in ("Pending", "Running")]
        if n > len(running):
            self._check_quota(dataclasses.replace(self.spec, n=n - len(running)))

    def create_objects(self, work_dir: str) -> dict[str, str]:
        """Create the cluster's Secret and write the files the driver reads; return the Spark conf."""
        secret_value = objects.new_auth_secret_value()
        self.api.create_secret(objects.auth_secret(self.spec, self.settings, secret_value))
        secret_file = os.path.join(work_dir, "spark-auth-secret")
        fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(objects.driver_secret_file_bytes(secret_value))
        template = os.path.join(work_dir, "executor-pod-template.json")
        with open(template, "w") as fh:
            json.dump(objects.executor_pod_template(self.spec, self.settings), fh)
        conf = kubernetes_conf(
            self.spec,
            self.settings,
            python=sys.executable,
            template_path=template,
            secret_name=objects.auth_secret_name(self.spec),
            driver_secret_file=secret_file,
        )
        conf["spark.local.dir"] = os.path.join(work_dir, "local")
        conf["spark.driver.extraJavaOptions"] = f"-Djava.io.tmpdir={work_dir}/tmp"
        return conf

    def launch(self) -> SparkSession:
        self.driver = SparkDriver(self.spec.name, self.spec.log_level)
        conf = self.create_objects(self.driver.work_dir)
        return self.driver.start(conf, environ={})

    def executor_pods(self) -> list[dict]:
        return self.api.occam_pods(objects.label_value(self.spec.name))

    def raise_if_failed(self) -> None:
        if self.driver is not None:
            self.driver.raise_if_dead()
        problem = pods.start_problem(self.executor_pods())
        if problem:
            raise ClusterStartError(f"{problem}\n{self.diagnostics()}")

    def diagnostics(self) -> str:
        try:
            executor_pods = self.executor_pods()
            events = self.api.pod_events([p["metadata"]["name"] for p in executor_pods])
        except Exception as exc:
            return f"(could not read the executor pods: {exc})"
        lines = [f"{e.get('involvedObject', {}).get('name')}: {e.get('reason')}: {e.get('message')}" for e in events]
        return (
            "executor pods:\n"
            + pods.pod_summary(executor_pods)
            + ("\nevents:\n" + "\n".join(lines[-20:]) if lines else "")
        )

    def describe(self) -> dict[str, str]:
        return {
            "cluster manager": f"Kubernetes ({self.api.host}), namespace {self.settings.namespace}",
            "shared work volume": self.settings.shared_path or "none (Dataset and fit need one)",
        }

    def stop(self) -> None:
        try:
            if self.driver is not None:
                self.driver.stop()
        finally:
            if self._api is not None:
                self._api.delete_cluster(objects.label_value(self.spec.name))
                self._api.close()

    # -- answers for sessions this backend's conf made (a notebook's cluster, a batch job's driver) -------

    @classmethod
    def unshared_path_problem(cls, conf: Mapping[str, str], path: str, *, writer: str) -> str | None:
        """Executor pods see the driver's files only on the shared work volume (its path is in the conf)."""
        return unshared_path_problem(path, shared_path=conf.get(SHARED_PATH_CONF), writer=writer)

    @classmethod
    def rank_interfaces(
        cls,
        conf: Mapping[str, str],
        ranks: int,
        driver_addresses: Sequence[str],
        interfaces: Mapping[str, Sequence[str]],
    ) -> set[str] | None:
        """A lone rank on an executor pod must not be handed the driver's loopback address."""
        return lone_rank_interfaces(ranks, driver_addresses, interfaces)

    # -- model services ---------------------------------------------------------------------------------

    @classmethod
    def serves_models_in_pods(cls, environ: Mapping[str, str]) -> bool:
        """In a notebook pod a model service is a Deployment and Service of its own (occam.models.serving_pod):
        counted by the namespace's quota, reached through the hub, gone with the notebook unless kept."""
        return in_kubernetes_pod(environ)

    @classmethod
    def start_model_service(
        cls, request: ModelServiceRequest, environ: Mapping[str, str], **context: Any
    ) -> ModelDeployment:
        """A Deployment and ClusterIP Service (occam.backends.kubernetes_serving); ``context``: ``settings`` and
        ``api`` other than the notebook pod's own."""
        return start_model_deployment(request, environ, **context)

    @classmethod
    def stop_model_service(cls, model: str, version: int, environ: Mapping[str, str]) -> None:
        stop_model_deployment(model, version, environ)

    # -- occam status / occam stop ------------------------------------------------------------------------

    @classmethod
    def status_text(cls, environ: Mapping[str, str]) -> str:
        return status_text(environ)

    @classmethod
    def stop_clusters(cls, names: Sequence[str], every: bool, environ: Mapping[str, str]) -> list[str]:
        return stop_clusters(names, every, environ)

    # -- batch jobs: cluster mode, a driver pod that owns its executor pods ------------------------------

    @classmethod
    def submit_job(cls, submission: Submission) -> int:
        settings, api = kubernetes_context(submission.environ)
        try:
            account = driver_service_account(submission.service_account, submission.environ, api)
            return run_kubernetes(
                submission.job,
                submission.spec,
                settings,
                api,
                service_account=account,
                detach=submission.detach,
                keep=submission.keep,
            )
        finally:
            api.close()

    @classmethod
    def job_conf_text(
        cls, spec: ClusterSpec, *, service_account: str | None, template_dir: str, environ: Mapping[str, str]
    ) -> str:
        return kubernetes_conf_text(spec, service_account, template_dir, environ)
