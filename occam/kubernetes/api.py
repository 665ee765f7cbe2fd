"""A thin layer over the Kubernetes API: what the backend reads, creates and deletes in one namespace, and what
an admin's ``occam course`` reads across the cluster (:class:`CourseApi`).

Every call has a request timeout; connection failures and refusals become errors that say what to do
(:func:`call`, which the spawner uses too). Objects come back as plain dicts (the API's own JSON shape),
which the pure functions consume.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from occam.contract import APP_NAME, MANAGED_BY_LABEL, SPAWNER_MANAGED_BY
from occam.errors import ConfigError
from occam.kubernetes.objects import APP_LABEL, CLUSTER_LABEL

#: Seconds each API request may take before it is abandoned.
REQUEST_TIMEOUT_SECONDS = 15


def call(
    api_client: Any,
    what: str,
    method: Callable[..., Any],
    *args: Any,
    who: str,
    refused: str,
    unreachable: str,
    timeout: float = REQUEST_TIMEOUT_SECONDS,
    **kwargs: Any,
) -> Any:
    """``method(*args, **kwargs)`` (a call of ``api_client``'s typed API) within ``timeout`` seconds; its result.

    What a person must fix becomes a :class:`~occam.errors.ConfigError` that names the request (``what``,
    e.g. "create a Secret") and the fix: a refusal (401, 403) says that ``who`` (e.g. "this notebook") may
    not, then ``refused`` and the API server's reason; an invalid object (422) gives the API server's
    reason; an unreachable API server adds ``unreachable``. Any other ``ApiException`` (404, 409) is the
    caller's to handle.
    """
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        return method(*args, _request_timeout=timeout, **kwargs)
    except ApiException as exc:
        if exc.status in (401, 403):
            raise ConfigError(
                f"Kubernetes refused to let {who} {what} ({exc.status} {exc.reason}): {refused}. "
                f"The API server said: {api_message(exc)}"
            ) from None
        if exc.status == 422:
            raise ConfigError(f"Kubernetes rejected the object when asked to {what}: {api_message(exc)}") from None
        raise
    except HTTPError as exc:
        host = getattr(getattr(api_client, "configuration", None), "host", None) or "the API server"
        raise ConfigError(f"cannot reach the Kubernetes API at {host} to {what}: {exc}. {unreachable}") from None


def api_message(exc: Any) -> str:
    """The API server's own message in an ``ApiException`` (its Status body), else the body or reason."""
    try:
        return str(json.loads(exc.body).get("message") or exc.body)
    except (TypeError, ValueError, AttributeError):
        return str(exc.body or exc.reason)


class NamespaceApi:
    """The calls Occam makes in the student's namespace, with the student's own credentials."""

    def __init__(self, namespace: str, kubeconfig: str | None = None) -> None:
        from kubernetes import client
        from kubernetes import config as kube_config

        path = kubeconfig or os.environ.get("KUBECONFIG")
        configuration = client.Configuration()
        try:
            if path:
                kube_config.load_kube_config(config_file=path, client_configuration=configuration)
            else:
                kube_config.load_incluster_config(client_configuration=configuration)
        except kube_config.ConfigException as exc:
            raise ConfigError(
                f"no Kubernetes credentials: {exc}. In a notebook started by OccamSpawner they are mounted "
                "automatically; elsewhere set KUBECONFIG, or use backend='embedded'"
            ) from None
        configuration.retries = 1
        self.host = configuration.host
        self.namespace = namespace
        self._client = client.ApiClient(configuration)
        self.core = client.CoreV1Api(self._client)
        self.apps = client.AppsV1Api(self._client)
        self.batch = client.BatchV1Api(self._client)

    def _call(self, what: str, method: Any, *args: Any, **kwargs: Any) -> Any:
        result = call(
            self._client,
            f"{what} in namespace {self.namespace!r}",
            method,
            *args,
            who="this notebook",
            refused="the role OccamSpawner grants allows it, so ask your course admin to check it",
            unreachable="Check that the cluster is up and that this notebook may reach it, or use backend='embedded'",
            **kwargs,
        )
        return self._client.sanitize_for_serialization(result)

    def resource_quotas(self) -> list[dict[str, Any]]:
        return self._call("read ResourceQuotas", self.core.list_namespaced_resource_quota, self.namespace)["items"]

    def limit_ranges(self) -> list[dict[str, Any]]:
        return self._call("read LimitRanges", self.core.list_namespaced_limit_range, self.namespace)["items"]

    def occam_pods(self, cluster: str | None = None) -> list[dict[str, Any]]:
        selector = f"{APP_LABEL}=occam" + (f",{CLUSTER_LABEL}={cluster}" if cluster else "")
        return self._call("list pods", self.core.list_namespaced_pod, self.namespace, label_selector=selector)["items"]

    def pod_events(self, pod_names: list[str]) -> list[dict[str, Any]]:
        events = self._call("read events", self.core.list_namespaced_event, self.namespace)["items"]
        wanted = set(pod_names)
        return [e for e in events if e.get("involvedObject", {}).get("name") in wanted]

    def create_secret(self, body: dict[str, Any]) -> None:
        self._call("create a Secret", self.core.create_namespaced_secret, self.namespace, body)

    def delete_cluster(self, cluster: str) -> None:
        """Delete every pod and Secret labelled with the cluster's name (idempotent)."""
        selector = f"{APP_LABEL}=occam,{CLUSTER_LABEL}={cluster}"
        self._call(
            "delete pods",
            self.core.delete_collection_namespaced_pod,
            self.namespace,
            label_selector=selector,
            grace_period_seconds=0,
        )
        self._call(
            "delete Secrets", self.core.delete_collection_namespaced_secret, self.namespace, label_selector=selector
        )

    # -- model services (occam.models.serving_pod): a Secret, a Deployment and a Service of one name ----------

    def create_model_service(self, secret: dict[str, Any], deployment: dict[str, Any], service: dict[str, Any]) -> None:
        """Create a model service's three objects (occam.kubernetes.serving's builders), the Secret first."""
        self.create_secret(secret)
        self._call("create a Deployment", self.apps.create_namespaced_deployment, self.namespace, deployment)
        self._call("create a Service", self.core.create_namespaced_service, self.namespace, service)

    def create_kept_model_service(self, secret: dict[str, Any], job: dict[str, Any], service: dict[str, Any]) -> None:
        """Create a kept model service: its Job first, then its Secret and Service owned by the Job (its uid is
        known only once it exists), so that they go with it. The pod waits for its Secret to mount."""
        from occam.kubernetes.serving import owned_by

        created = self._call("create a Job", self.batch.create_namespaced_job, self.namespace, job)
        self.create_secret(owned_by(secret, created))
        self._call("create a Service", self.core.create_namespaced_service, self.namespace, owned_by(service, created))

    def _read(self, what: str, method: Any, name: str) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        try:
            return dict(self._call(what, method, name, self.namespace))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def read_deployment(self, name: str) -> dict[str, Any] | None:
        """The Deployment ``name``, or None when there is none."""
        return self._read("read a Deployment", self.apps.read_namespaced_deployment, name)

    def read_job(self, name: str) -> dict[str, Any] | None:
        """The Job ``name`` (a kept model service), or None when there is none."""
        return self._read("read a Job", self.batch.read_namespaced_job, name)

    def pods(self, selector: str) -> list[dict[str, Any]]:
        """The pods matching the label ``selector``."""
        return list(
            self._call("list pods", self.core.list_namespaced_pod, self.namespace, label_selector=selector)["items"]
        )

    def pod_log(self, name: str, tail_lines: int = 200) -> str:
        """The last ``tail_lines`` lines of the pod's log."""
        return str(
            self._call(
                "read a pod's log", self.core.read_namespaced_pod_log, name, self.namespace, tail_lines=tail_lines
            )
        )

    def delete_model_service(self, name: str) -> None:
        """Delete a model service's Deployment or Job (foreground: its ReplicaSet and pod go first, and none is
        made again meanwhile), Service and Secret, all named ``name``. Idempotent."""
        from kubernetes.client.exceptions import ApiException

        for what, method, options in (
            ("delete a Deployment", self.apps.delete_namespaced_deployment, {"propagation_policy": "Foreground"}),
            ("delete a Job", self.batch.delete_namespaced_job, {"propagation_policy": "Foreground"}),
            ("delete a Service", self.core.delete_namespaced_service, {}),
            ("delete a Secret", self.core.delete_namespaced_secret, {}),
        ):
            try:
                self._call(what, method, name, self.namespace, **options)
            except ApiException as exc:
                if exc.status != 404:
                    raise

    def close(self) -> None:
        self._client.close()


class CourseApi:
    """What ``occam course`` reads across the cluster with the admin's own kubeconfig (read-only): the student
    namespaces the spawner made and the Occam pods in them."""

    def __init__(self, kubeconfig: str | None = None) -> None:
        from kubernetes import client
        from kubernetes import config as kube_config

        configuration = client.Configuration()
        try:
            # None: $KUBECONFIG, else ~/.kube/config, as kubectl finds it.
            kube_config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
        except (kube_config.ConfigException, OSError) as exc:
            raise ConfigError(
                f"no Kubernetes credentials for the course's cluster: {exc}. Pass --kubeconfig PATH or set "
                "KUBECONFIG to an admin's kubeconfig (the one kubectl uses)"
            ) from None
        configuration.retries = 1
        self.host = configuration.host
        self._client = client.ApiClient(configuration)
        self.core = client.CoreV1Api(self._client)

    def _call(self, what: str, method: Any, *args: Any, **kwargs: Any) -> Any:
        result = call(
            self._client,
            what,
            method,
            *args,
            who="you",
            refused="occam course needs to list namespaces and pods in every namespace (a cluster admin's "
            "kubeconfig, or a ClusterRole with those two verbs)",
            unreachable="Check the kubeconfig's cluster address and that the cluster is up",
            **kwargs,
        )
        return self._client.sanitize_for_serialization(result)

    def student_namespaces(self) -> list[dict[str, Any]]:
        selector = f"{MANAGED_BY_LABEL}={SPAWNER_MANAGED_BY}"
        return list(self._call("list namespaces", self.core.list_namespace, label_selector=selector)["items"])

    def occam_pods(self) -> list[dict[str, Any]]:
        """Every Occam pod (notebooks, executors, batch drivers) in every namespace."""
        selector = f"{APP_LABEL}={APP_NAME}"
        return list(self._call("list pods", self.core.list_pod_for_all_namespaces, label_selector=selector)["items"])

    def close(self) -> None:
        self._client.close()
