"""``OccamSettings``: every setting of OccamSpawner (``c.OccamSpawner.*``), with its help and its validation.

:class:`spawner.spawner.OccamSpawner` is this class with the behaviour: a setting that is wrong fails when
the hub loads its configuration, with a :class:`traitlets.TraitError` that names the setting and the fix,
before any student spawns. The help strings are the reference (docs/spawner.md is generated from them by
:mod:`spawner.reference`). The few values worked out from several settings (the course's limits, the work
volume pods mount, the student's namespace name) are here too.
"""

from __future__ import annotations

import os
import posixpath
from typing import Any

from kubespawner import KubeSpawner
from traitlets import Bool, Dict, Float, Int, List, TraitError, Unicode, default, validate

from occam.contract import UI_PORT
from occam.errors import ConfigError
from occam.kubernetes.shared import check_shared_work
from spawner.limits import CourseLimits, course_limits_from
from spawner.namespace import (
    HUB_NAMESPACE_ROLE,
    NAMESPACE_PREFIX,
    NOTEBOOK_CLUSTER_ROLE,
    POD_SECURITY_LEVEL,
    check_pod_security_level,
    check_prefix,
    namespace_name,
)
from spawner.network_policy import cidr_problem
from spawner.work_volume import check_work_storage, work_volume_source

_HUB_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


class OccamSettings(KubeSpawner):
    """KubeSpawner with Occam's settings (configured as ``c.OccamSpawner.<name>``); OccamSpawner acts on them."""

    course_limits = Dict(
        {"max_executors": 2, "cpu": "4", "memory": "8Gi", "gpus": 0},
        config=True,
        help="""
        What each student's namespace allows, notebook included (spawner.limits.CourseLimits):
        max_executors (executor pods at once), cpu and memory (the namespace's totals, as Kubernetes
        quantities such as "8" and "16Gi"), gpus (0: none), executor_max_cpu and executor_max_memory
        (the most one container may ask for; defaults "2" and "4Gi"); ephemeral_storage and
        executor_max_ephemeral_storage (node-local disk in all and per container; "20Gi", "4Gi");
        storage (what claims may request in all, the home volume's included; "20Gi"); and the counts
        secrets (20), configmaps (20), services (10) and persistent_volume_claims (4). NodePort and
        LoadBalancer Services are never allowed. Enforced by the namespace's ResourceQuota and
        LimitRange, which are updated at every spawn. The notebook container's own CPU and memory count
        against cpu and memory and must not exceed the per-container maximum.
        """,
    )

    executor_image = Unicode(
        "",
        config=True,
        help="""
        The container image Occam's executor pods run (OCCAM_K8S_EXECUTOR_IMAGE). It must hold the
        same Python, Spark and Occam as the notebook. Empty (the default): the notebook's own image.
        """,
    )

    gpu_executor_image = Unicode(
        "",
        config=True,
        help="""
        The image GPU executors run (OCCAM_K8S_GPU_EXECUTOR_IMAGE), when it is not executor_image: a CPU
        notebook whose course_limits lend it GPUs runs a CPU image, and its start_cluster(gpu=True)
        executors need a CUDA one. Empty (the default): GPU executors run executor_image.
        """,
    )

    executor_idle_minutes = Float(
        0,
        config=True,
        help="""
        Minutes a student's cluster may sit with no Spark job and no fit before its executors are
        released (the cluster stops; the student's next call on it says why). Passed to the notebook as
        OCCAM_EXECUTOR_IDLE_MINUTES. 0 (the default): never; executors live as long as the notebook.
        """,
    )

    kept_service_idle_minutes = Float(
        0,
        config=True,
        help="""
        Minutes a kept model service (occam.models.serve(..., keep=True)) may go without a request
        before it ends: its pod is then a Job, deleted with its Service and Secret once the service
        exits, so its CPU and memory go back to the student's quota. Passed to the notebook as
        OCCAM_SERVE_KEPT_IDLE_MINUTES. 0 (the default): a kept service lives until stop_service.
        """,
    )

    max_gpus_in_use = Int(
        0,
        config=True,
        help="""
        The most GPUs the whole course may hold at once, all students' notebooks and executors together
        (0, the default: no cap beyond each namespace's GPU quota). Checked when a server whose
        course_limits allow GPUs starts: a GPU notebook must fit under the cap, a CPU notebook that
        borrows GPUs needs one free. The student is told how many are in use; the hub's log names the
        namespaces that hold them. Executors started later by a running notebook are held to its
        namespace's quota only (a ResourceQuota cannot span namespaces). The hub lists pods in every
        namespace for it.
        """,
    )

    copied_pull_secrets = List(
        trait=Unicode(),
        config=True,
        help="""
        Names of image pull Secrets (kubernetes.io/dockerconfigjson) in hub_namespace. At every spawn
        the spawner copies each into the student's namespace (server-side apply) and lists them in the
        notebook ServiceAccount's imagePullSecrets, so the notebook, its executors and batch drivers
        (which run as that account) pull from a private registry. Only that Secret type is copied:
        students can read the Secrets of their namespace.
        """,
    )

    namespace_prefix = Unicode(
        NAMESPACE_PREFIX,
        config=True,
        help="""
        What each student's namespace name starts with: the namespace is the prefix and the username,
        made a valid name (spawner.namespace.namespace_name; a username that must be cleaned up gets 16
        hex digits, 64 bits, of its hash). Lowercase letters, digits and "-", starting with a letter, at
        most 30 characters. Changing it gives every student a new, empty namespace at their next spawn; the old
        ones are left as they are.
        """,
    )

    pod_security_level = Unicode(
        POD_SECURITY_LEVEL,
        config=True,
        help="""
        The Pod Security Standard every student namespace enforces (its pod-security.kubernetes.io/enforce
        label, pinned to v1.34; warn and audit are always restricted, at latest): "restricted" (the
        default: non-root, no privilege escalation, no capabilities, the runtime's seccomp profile, and
        only claims, CSI and projected volumes) or "baseline" (also inline volumes such as nfs, still no
        privileged, host namespaces or hostPath). The notebook pod, executors and batch drivers meet
        restricted; choose baseline only for a shared_work_volume restricted refuses (an inline nfs).
        """,
    )

    hub_namespace = Unicode(
        config=True,
        help="""
        The namespace of the hub and its proxy: the notebook pod's NetworkPolicy lets pods there that
        match hub_selector reach the Jupyter port, and the notebook reach them on ports 8081 and 8000.
        Default: the hub's own namespace when it runs in a pod, else "default".
        """,
    )

    hub_selector = Dict(
        {"app": "jupyterhub"},
        config=True,
        help="""
        Labels of the pods in hub_namespace that may reach the notebook's Jupyter port, and that the
        notebook may reach on 8081 (the hub's API) and 8000 (the proxy's public port). Must name at
        least one label. The default matches Zero to JupyterHub's hub and proxy.
        """,
    )

    notebook_cluster_role = Unicode(
        NOTEBOOK_CLUSTER_ROLE,
        config=True,
        help="""
        The ClusterRole with the notebook's rules (spawner.hub_rbac.notebook_cluster_role; the chart's is
        named after the release), bound to the notebook's account in each student namespace. The hub's
        ClusterRole must allow "bind" on it.
        """,
    )

    hub_namespace_role = Unicode(
        HUB_NAMESPACE_ROLE,
        config=True,
        help="""
        The ClusterRole of what the hub does inside a student namespace (notebook pod, home volume claim,
        deleting executors and their Secrets; spawner.hub_rbac.hub_namespace_cluster_role), bound to the
        hub's own account in each namespace it prepares. The hub's ClusterRole must allow "bind" on it.
        """,
    )

    api_server_cidrs = List(
        trait=Unicode(),
        config=True,
        help="""
        The API server's addresses as pods reach them after the kubernetes Service (its endpoints: kubectl
        get endpointslices -n default -l kubernetes.io/service-name=kubernetes), e.g. ["10.0.0.5/32"]:
        the notebook and batch drivers may connect there on ports 443 and 6443; nothing else in a student
        namespace may. Empty (the default; the chart fills it in from the cluster at install): those two
        may connect to ports 443 and 6443 of any address (spawner.network_policy).
        """,
    )

    dns_cidrs = List(
        trait=Unicode(),
        config=True,
        help="""
        Addresses of the cluster's DNS other than kube-system's kube-dns pods, which are always allowed
        on port 53, e.g. ["169.254.20.10/32"] for NodeLocal DNSCache. Empty: none.
        """,
    )

    allow_internet = Bool(
        False,
        config=True,
        help="""
        Let every pod of a student namespace connect to the internet: any address but the private ranges
        (10/8, 172.16/12, 192.168/16), 100.64/10 and link-local 169.254/16, the cloud's metadata service
        included. False (the default): no connection leaves the cluster but to the API server, DNS and
        the hub. The NetworkPolicy occam-internet is deleted from every namespace at its next spawn
        when this is turned off.
        """,
    )

    gpu_node_selector = Dict(
        config=True,
        help="""
        Node labels added to GPU executor pods only (OCCAM_K8S_GPU_NODE_SELECTOR, as JSON), e.g.
        {"nvidia.com/gpu.present": "true"}. Empty: none.
        """,
    )

    gpu_tolerations = List(
        trait=Dict(),
        config=True,
        help="""
        Tolerations added to GPU executor pods only (OCCAM_K8S_GPU_TOLERATIONS, as JSON), e.g.
        [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]. Empty: none.
        """,
    )

    shared_work_volume = Dict(
        config=True,
        help="""
        The shared work volume, as a Kubernetes volume source, e.g. {"persistentVolumeClaim":
        {"claimName": "occam-work"}} or {"nfs": {"server": "nfs.example.org", "path": "/occam"}}.
        The notebook pod mounts it read-write at shared_work_path, and so does every executor pod
        (OCCAM_K8S_SHARED_VOLUME and OCCAM_K8S_SHARED_PATH); the dataset cache and fit checkpoints go
        there (OCCAM_CACHE_DIR=<path>/cache, OCCAM_CHECKPOINT_DIR=<path>/checkpoints), because executors
        write them and the notebook reads them. It must be reachable from every student namespace and
        every node (a ReadWriteMany claim of that name in each namespace, NFS, or a CSI volume), and
        writable by the image's user; each student should get their own (a claim per namespace, or an
        export per student). Empty (the default): none, and Dataset conversions and fit on Kubernetes
        clusters fail with an error that asks for one.
        """,
    )

    work_storage_class = Unicode(
        "",
        config=True,
        help="""
        A StorageClass that provisions ReadWriteMany volumes (NFS, CephFS, a cloud file store): the
        spawner then makes each student's own work volume, the claim occam-work of work_storage_size in
        their namespace (counted by the storage quota), and mounts it as the shared work volume unless
        shared_work_volume names another. Empty (the default): no claim is made.
        """,
    )

    work_storage_size = Unicode(
        "10Gi",
        config=True,
        help="""
        The size of each student's work volume claim (work_storage_class), a Kubernetes quantity.
        """,
    )

    shared_work_path = Unicode(
        "/home/jovyan/occam-work",
        config=True,
        help="""
        Where the notebook and the executors mount shared_work_volume: an absolute path, the same in
        both. Unused when shared_work_volume is empty.
        """,
    )

    tracking_uri = Unicode(
        "",
        config=True,
        help="""
        The MLflow tracking URI every student's fits are recorded in (OCCAM_TRACKING_URI in the notebook
        pod), e.g. a course MLflow server, http://mlflow.occam.svc:5000. Everyone who can reach that server
        sees every run recorded there (parameters, metrics, models, and the student's user name): a course
        server suits a shared leaderboard, not private work. Notebook pods must reach it: the student
        namespaces' NetworkPolicies deny egress but to what Occam needs, so an admin adds a NetworkPolicy
        that lets them reach the server (an internet server: allow_internet). Empty (the default): each
        student's own SQLite store under their cache (the shared work volume), no server, nobody else sees the runs.
        """,
    )

    namespace_prepare_timeout = Float(
        120,
        config=True,
        help="""
        Seconds the whole preparation of a student's namespace may take before the spawn fails (each
        API request also gives up after its own timeout).
        """,
    )

    spark_ui_port = Int(
        UI_PORT,
        config=True,
        help="""
        The port of the Spark UI in the notebook pod: the Kubernetes backend's fixed UI port (4040), and
        the first one the embedded backend tries. The notebook gets APPLICATION_WEB_PROXY_BASE set to
        <JUPYTERHUB_SERVICE_PREFIX>proxy/<port>, so that the UI's links and assets work when it is
        opened through the hub's proxy and jupyter-server-proxy (cluster.dashboard_link).
        """,
    )

    check_node_fit = Bool(
        True,
        config=True,
        help="""
        Before making the notebook pod, compare it with every node (node selector, required node
        affinity, taints against the pod's tolerations, cordons, and each resource it asks for, GPUs
        included, against the node's allocatable) and fail the spawn at once, saying why, when no node
        could ever take it; a GPU profile on a cluster without such a node then fails in a second
        instead of leaving a pod Pending until start_timeout. It ignores what other pods use now. Turn
        it off where nodes come and go (a cluster autoscaler that adds GPU nodes on demand). If the
        hub's account may not list nodes, the check is skipped with a warning.
        """,
    )

    enable_user_namespaces = Bool(
        True,
        config=True,
        help="""
        Always True for OccamSpawner: every student gets a namespace of their own, named by
        namespace_prefix and the username (see namespace_prefix). Setting it False is an error.
        """,
    )

    @validate("enable_user_namespaces")
    def _validate_user_namespaces(self, proposal: Any) -> bool:
        if not proposal["value"]:
            raise TraitError(
                "OccamSpawner.enable_user_namespaces cannot be False: each student's Occam clusters need a "
                "namespace of their own, with its own quota and role"
            )
        return True

    @validate("course_limits")
    def _validate_course_limits(self, proposal: Any) -> dict[str, Any]:
        try:
            course_limits_from(proposal["value"])
        except ConfigError as exc:
            raise TraitError(f"OccamSpawner.course_limits: {exc}") from None
        return dict(proposal["value"])

    @validate("namespace_prefix")
    def _validate_namespace_prefix(self, proposal: Any) -> str:
        try:
            return check_prefix(proposal["value"])
        except ValueError as exc:
            raise TraitError(f"OccamSpawner.namespace_prefix: {exc}") from None

    @validate("pod_security_level")
    def _validate_pod_security_level(self, proposal: Any) -> str:
        try:
            return check_pod_security_level(proposal["value"])
        except ValueError as exc:
            raise TraitError(f"OccamSpawner.pod_security_level: {exc}") from None

    @validate("hub_selector")
    def _validate_hub_selector(self, proposal: Any) -> dict[str, str]:
        value = proposal["value"]
        if not value or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise TraitError(
                f"OccamSpawner.hub_selector={value!r} must map at least one label name to a value, "
                'e.g. {"app": "jupyterhub"}; an empty selector would let every pod in hub_namespace in'
            )
        return dict(value)

    @validate("api_server_cidrs", "dns_cidrs")
    def _validate_cidrs(self, proposal: Any) -> list[str]:
        name, value = proposal["trait"].name, list(proposal["value"])
        problem = cidr_problem(name, value)
        if problem is not None:
            raise TraitError(f"OccamSpawner.{problem}")
        return value

    @validate("work_storage_class", "work_storage_size")
    def _validate_work_storage(self, proposal: Any) -> str:
        value = str(proposal["value"])
        storage_class = value if proposal["trait"].name == "work_storage_class" else self.work_storage_class
        size = value if proposal["trait"].name == "work_storage_size" else self.work_storage_size
        if storage_class:
            try:
                check_work_storage(storage_class, size)
            except ValueError as exc:
                raise TraitError(f"OccamSpawner.{exc}") from None
        return value

    @validate("gpu_node_selector")
    def _validate_gpu_node_selector(self, proposal: Any) -> dict[str, str]:
        value = proposal["value"]
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise TraitError(
                f'OccamSpawner.gpu_node_selector={value!r} must map label names to string values, e.g. {{"gpu": "true"}}'
            )
        return dict(value)

    @validate("shared_work_volume")
    def _validate_shared_work_volume(self, proposal: Any) -> dict[str, Any]:
        value = dict(proposal["value"])
        if value:
            try:
                check_shared_work(value, self.shared_work_path)
            except ConfigError as exc:
                raise TraitError(f"OccamSpawner.shared_work_volume: {exc}") from None
        return value

    @validate("shared_work_path")
    def _validate_shared_work_path(self, proposal: Any) -> str:
        value = str(proposal["value"])
        if not posixpath.isabs(value) or posixpath.normpath(value) == "/":
            raise TraitError(
                f"OccamSpawner.shared_work_path={value!r} must be an absolute path other than /, e.g. /home/jovyan/occam-work"
            )
        return posixpath.normpath(value)

    @default("hub_namespace")
    def _hub_namespace_default(self) -> str:
        if os.path.exists(_HUB_NAMESPACE_FILE):
            with open(_HUB_NAMESPACE_FILE) as f:
                return f.read().strip()
        return "default"

    def user_namespace_name(self) -> str:
        """The student's namespace, from ``namespace_prefix`` and the username."""
        return namespace_name(self.user.name, prefix=self.namespace_prefix)

    @property
    def work_volume(self) -> dict[str, Any]:
        """The shared work volume pods mount: ``shared_work_volume``, else the student's own claim when
        ``work_storage_class`` is set, else none (empty)."""
        if self.shared_work_volume:
            return dict(self.shared_work_volume)
        return work_volume_source() if self.work_storage_class else {}

    @property
    def limits(self) -> CourseLimits:
        """The course's limits, from ``course_limits``."""
        return course_limits_from(self.course_limits)


__all__ = ["OccamSettings"]
