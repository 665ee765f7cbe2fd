"""``OccamSpawner``: KubeSpawner with one prepared namespace per student and the notebook pod Occam needs.

Before the notebook pod is made, it is checked against the cluster's nodes (``check_node_fit``,
:mod:`spawner.placement`): a pod no node could ever take fails the spawn at once, saying why. Then the
student's namespace (:func:`spawner.namespace.namespace_name`) is created or brought up to date with
:func:`spawner.apply.prepare_namespace` (server-side apply): the notebook's ServiceAccount and Role, the
course's ResourceQuota and LimitRange, and the NetworkPolicies (:mod:`spawner.network_policy`). The pod then
runs as that ServiceAccount, with the labels the NetworkPolicies select and the ``OCCAM_K8S_*``
environment the Kubernetes backend reads (see :mod:`spawner.notebook_pod`). When the server stops,
for any reason (a stop, a cull, a notebook pod that was already gone), every executor pod and Secret
Occam made in the namespace is deleted.

Use it with ``c.JupyterHub.spawner_class = "occam"``. The hub's service account needs the ClusterRole
of :func:`spawner.hub_rbac.hub_cluster_role` (docs/spawner.md lists it).

Its settings, their help and validation are :class:`spawner.settings.OccamSettings`, which it extends; the
namespace preparation it runs in the hub's threads is :mod:`spawner.preparation`; the node-fit and course GPU
decisions are :mod:`spawner.placement` and :mod:`spawner.capacity`; the notebook pod's additions
:mod:`spawner.notebook_pod`. This module wires them into KubeSpawner's spawn and stop.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from typing import Any

from occam.contract import (
    APP_LABEL,
    APP_NAME,
    BATCH_JOB_LABEL,
    COMPONENT_LABEL,
    NOTEBOOK_COMPONENT,
    SERVING_COMPONENT,
    TRACKING_URI_ENV,
)
from occam.errors import ConfigError
from spawner import capacity, notebook_pod, preparation
from spawner.apply import CREATED, Applied
from spawner.capacity import CourseGpusTaken, UnplaceableServer
from spawner.limits import course_limits_from
from spawner.namespace import namespace_name, restricted_volume_problem
from spawner.placement import unplaceable_reason
from spawner.settings import OccamSettings

#: Occam's pods and Secrets in a student's namespace other than the notebook pod, batch jobs (which outlive the
#: notebook, docs/batch-jobs.md) and model services (owned by the notebook pod, so Kubernetes deletes them with
#: it, unless the student kept one: then its token Secret must stay): what ``stop`` deletes.
EXECUTOR_SELECTOR = (
    f"{APP_LABEL}={APP_NAME},{COMPONENT_LABEL}!={NOTEBOOK_COMPONENT},{COMPONENT_LABEL}!={SERVING_COMPONENT},"
    f"!{BATCH_JOB_LABEL}"
)

#: Seconds one node list is reused by the node-fit checks of spawns that start together.
NODE_LIST_TTL = 5.0


class OccamSpawner(OccamSettings):
    """KubeSpawner that spawns each student into a namespace of their own, prepared for Occam clusters."""

    # (when, nodes) of the last node list, shared by the hub's spawners (see _list_nodes).
    _node_list: tuple[float, list[dict[str, Any]]] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # KubeSpawner set the namespace from user_namespace_template; ours is namespace_name's.
        # A namespace saved in the hub's state (load_state, after this) still wins.
        self.namespace = self.user_namespace_name()
        self.dns_name = self.dns_name_template.format(namespace=self.namespace, name=self.pod_name)

    # Namespace preparation (spawner.preparation)

    def make_api_client(self) -> Any:
        """A new (blocking) ``kubernetes.client.ApiClient`` with the hub's credentials, as KubeSpawner finds them."""
        return preparation.make_api_client(self)

    async def prepare_user_namespace(self) -> list[Applied]:
        """Create or update the student's namespace objects (in a thread); return what was done."""
        username, limits, prefix = self.user.name, self.limits, self.namespace_prefix
        name = namespace_name(username, prefix=prefix)
        if name != self.namespace:
            # A namespace from the hub's saved state that is not this user's Occam namespace (the prefix
            # changed, or state from a plain KubeSpawner): spawn into the one prepared now.
            self.log.warning("Moving %s from namespace %s to %s", username, self.namespace, name)
            self.namespace = name
            self.dns_name = self.dns_name_template.format(namespace=name, name=self.pod_name)
        loop = asyncio.get_running_loop()
        work = loop.run_in_executor(
            preparation.preparations(), preparation.prepare_blocking, self, username, limits, prefix
        )
        try:
            applied = await asyncio.wait_for(work, self.namespace_prepare_timeout)
        except TimeoutError:
            raise ConfigError(
                f"preparing namespace {name} took over {self.namespace_prepare_timeout:g} s; "
                "check that the Kubernetes API server is up and answering the hub"
            ) from None
        created = [f"{a.kind} {a.name}" for a in applied if a.action == CREATED]
        self.log.info("Namespace %s ready%s", name, f" (created {', '.join(created)})" if created else "")
        return applied

    async def _ensure_namespace(self) -> None:
        # KubeSpawner calls this at the start of every spawn (enable_user_namespaces is always True here),
        # after the profile is applied and before the pod is made: instead of a bare namespace, check that
        # some node could run the pod, then make everything the student needs. It is private to
        # KubeSpawner: tests/unit/test_spawner_kubespawner.py fails on an upgrade until this is re-checked.
        problem = restricted_volume_problem(self.work_volume, self.pod_security_level)
        if problem is not None:
            # Executors mount it too: Spark's pod creation would be refused, and start_cluster time out.
            raise ConfigError(problem)
        if self.check_node_fit:
            await self.ensure_placeable()
        await self.ensure_course_gpus()
        await self.prepare_user_namespace()

    async def ensure_placeable(self) -> None:
        """Raise :class:`UnplaceableServer` if no node could ever run this notebook pod (see ``check_node_fit``)."""
        pod = self.api.api_client.sanitize_for_serialization(await self.get_pod_manifest())
        nodes = await self._list_nodes()
        if nodes is None:
            return
        reason = unplaceable_reason(pod, nodes)
        if reason is not None:
            self.log.warning("Refusing to spawn %s: %s", self.user.name, reason)
            raise UnplaceableServer(reason)

    def notebook_gpus(self) -> int:
        """GPUs the notebook pod itself asks for (its profile's ``extra_resource_limits``)."""
        return capacity.requested_gpus(self.extra_resource_limits, self.extra_resource_guarantees)

    async def ensure_course_gpus(self) -> None:
        """Raise :class:`CourseGpusTaken` if this server would pass the course-wide ``max_gpus_in_use``."""
        if self.max_gpus_in_use > 0 and self.limits.gpus > 0:
            await capacity.ensure_course_gpus(
                self.api, self.namespace, self.notebook_gpus(), self.max_gpus_in_use, self.log, self.user.name
            )

    async def _list_nodes(self) -> list[dict[str, Any]] | None:
        # A workshop's spawns come together: one node list serves every spawn within NODE_LIST_TTL seconds.
        cached = OccamSpawner._node_list
        now = time.monotonic()
        if cached is not None and now - cached[0] < NODE_LIST_TTL:
            return cached[1]
        nodes = await capacity.list_nodes(self.api, self.log)
        if nodes is not None:
            OccamSpawner._node_list = (now, nodes)
        return nodes

    # The notebook pod

    def occam_env(self) -> list[dict[str, Any]]:
        """The ``OCCAM_K8S_*`` EnvVar objects of this notebook pod."""
        return notebook_pod.notebook_env(
            executor_image=self.executor_image or self.image,
            user=self.user.name,
            image_pull_policy=self.image_pull_policy,
            gpu_node_selector=self.gpu_node_selector,
            gpu_tolerations=self.gpu_tolerations,
            gpu_executor_image=self.gpu_executor_image or None,
            executor_idle_minutes=self.executor_idle_minutes,
            kept_service_idle_minutes=self.kept_service_idle_minutes,
        )

    def get_env(self) -> dict[str, Any]:
        env = super().get_env()
        env.update(notebook_pod.env_by_name(self.occam_env()))
        if self.work_volume:
            env.update(notebook_pod.env_by_name(notebook_pod.shared_work_env(self.work_volume, self.shared_work_path)))
        if self.tracking_uri:
            env[TRACKING_URI_ENV] = self.tracking_uri
        prefix = env.get("JUPYTERHUB_SERVICE_PREFIX")
        if prefix:
            env.update(notebook_pod.spark_ui_env(prefix, self.spark_ui_port))
        return env

    async def get_pod_manifest(self) -> Any:
        pod = await super().get_pod_manifest()
        from kubernetes_asyncio.client import V1PodSecurityContext, V1SecurityContext
        from kubespawner.utils import get_k8s_model

        pod.metadata.labels = {**(pod.metadata.labels or {}), **notebook_pod.notebook_labels()}
        attribute = {camel: snake for snake, camel in type(pod.spec).attribute_map.items()}
        for field, value in notebook_pod.pod_spec_fields().items():
            setattr(pod.spec, attribute[field], value)
        # The namespace enforces Pod Security's restricted level: tighten what KubeSpawner's settings made.
        serialize = self.api.api_client.sanitize_for_serialization
        pod.spec.security_context = get_k8s_model(
            V1PodSecurityContext, notebook_pod.restricted_pod_security(serialize(pod.spec.security_context) or {})
        )
        for container in [*(pod.spec.init_containers or []), *pod.spec.containers]:
            container.security_context = get_k8s_model(
                V1SecurityContext,
                notebook_pod.restricted_container_security(serialize(container.security_context) or {}),
            )
        if self.work_volume:
            from kubernetes_asyncio.client import V1Volume, V1VolumeMount
            from kubespawner.utils import get_k8s_model

            volume, mount = notebook_pod.shared_work_mount(self.work_volume, self.shared_work_path)
            pod.spec.volumes = [*(pod.spec.volumes or []), get_k8s_model(V1Volume, volume)]
            container = pod.spec.containers[0]  # KubeSpawner's notebook container comes first
            container.volume_mounts = [*(container.volume_mounts or []), get_k8s_model(V1VolumeMount, mount)]
        return pod

    # Stopping

    async def stop(self, now: bool = False) -> None:
        try:
            await super().stop(now=now)
        finally:
            await self.delete_executors()

    async def run_post_stop_hook(self) -> None:
        # JupyterHub calls this after every stop of a server, also when it found the notebook pod already
        # gone (deleted, evicted, its node lost), in which case it does not call stop(): clean up here too.
        await self.delete_executors()
        result = super().run_post_stop_hook()
        if inspect.isawaitable(result):
            await result

    async def delete_executors(self) -> None:
        """Delete every Occam executor pod and Secret in the student's namespace (not the notebook pod)."""
        from kubernetes_asyncio.client.rest import ApiException

        for kind, delete in (
            ("pods", self.api.delete_collection_namespaced_pod),
            ("secrets", self.api.delete_collection_namespaced_secret),
        ):
            try:
                await asyncio.wait_for(
                    delete(self.namespace, label_selector=EXECUTOR_SELECTOR), self.k8s_api_request_timeout
                )
            except ApiException as exc:
                if exc.status != 404:
                    self.log.error(
                        "Could not delete Occam %s in %s: %s %s", kind, self.namespace, exc.status, exc.reason
                    )
            except TimeoutError:
                self.log.error("Deleting Occam %s in %s timed out", kind, self.namespace)


__all__ = ["EXECUTOR_SELECTOR", "CourseGpusTaken", "OccamSpawner", "UnplaceableServer", "course_limits_from"]
