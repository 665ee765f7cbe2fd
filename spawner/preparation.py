"""Preparing a student's namespace from the hub: OccamSpawner's settings -> the objects -> the API server.

:func:`prepare_blocking` is what one spawn does, in a thread: learn the hub's own identity (once per hub
process), read the pull Secrets to copy, build the namespace's objects with the pure builders
(:func:`spawner.namespace.namespace_objects`, :func:`spawner.work_volume.work_claim`), apply them
(:func:`spawner.apply.prepare_namespace`) and wait until the hub may make the notebook pod there.

A workshop's spawns come together, and one hub process serves them all, so the blocking client and the
threads are the hub's, not each spawn's: one ``ApiClient`` per set of credentials (:func:`shared_api_client`:
its connections are kept, not set up again with a TLS handshake for every spawn, and the kubeconfig is not
read again), and at most :data:`PREPARATION_WORKERS` namespaces prepared at once (:func:`preparations`),
each with at most :data:`~spawner.apply.APPLY_CONCURRENCY` requests in flight.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from occam.errors import ConfigError
from occam.kubernetes.api import REQUEST_TIMEOUT_SECONDS
from spawner.apply import (
    APPLY_CONCURRENCY,
    Applied,
    own_username,
    prepare_namespace,
    read_pull_secrets,
    wait_until_allowed,
)
from spawner.limits import CourseLimits
from spawner.namespace import labels, namespace_name, namespace_objects
from spawner.settings import OccamSettings
from spawner.work_volume import work_claim

#: The most student namespaces one hub prepares at once; more spawns wait their turn.
PREPARATION_WORKERS = 16

_lock = threading.Lock()
_clients: dict[tuple[Any, ...], Any] = {}
_hub_users: dict[str, str] = {}
_pool: ThreadPoolExecutor | None = None


def make_api_client(settings: OccamSettings) -> Any:
    """A new (blocking) ``kubernetes.client.ApiClient`` with the hub's credentials, as KubeSpawner finds them
    (in a pod: its service account; else the kubeconfig), and ``settings``' ``k8s_api_*`` overrides."""
    from kubernetes import client, config

    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)
    except config.ConfigException:
        config.load_kube_config(client_configuration=configuration)
    if settings.k8s_api_host:
        configuration.host = settings.k8s_api_host
    if settings.k8s_api_ssl_ca_cert:
        configuration.ssl_ca_cert = settings.k8s_api_ssl_ca_cert
    if settings.k8s_api_verify_ssl is not None:
        configuration.verify_ssl = settings.k8s_api_verify_ssl
    # Every request of the namespaces prepared at once may keep its connection.
    configuration.connection_pool_maxsize = max(
        configuration.connection_pool_maxsize or 0, PREPARATION_WORKERS * APPLY_CONCURRENCY
    )
    return client.ApiClient(configuration)


def _credentials_key(settings: OccamSettings) -> tuple[Any, ...]:
    # A kubeconfig written anew (another path, or the same one changed) gives a new client; in a pod the
    # client refreshes its service account token itself.
    path = os.path.expanduser(os.environ.get("KUBECONFIG", "~/.kube/config").split(os.pathsep)[0])
    try:
        changed = os.stat(path).st_mtime_ns
    except OSError:
        changed = None
    return (path, changed, settings.k8s_api_host, settings.k8s_api_ssl_ca_cert, settings.k8s_api_verify_ssl)


def shared_api_client(settings: OccamSettings) -> Any:
    """The hub's ApiClient for ``settings``' credentials (:func:`make_api_client`), made at first use and
    kept; one made for credentials since replaced is closed."""
    key = _credentials_key(settings)
    with _lock:
        api_client = _clients.get(key)
        if api_client is None:
            for old in _clients.values():
                old.close()
            _clients.clear()
            api_client = _clients[key] = make_api_client(settings)
        return api_client


def close_api_clients() -> None:
    """Close the clients :func:`shared_api_client` keeps (tests; a hub process simply exits)."""
    with _lock:
        for api_client in _clients.values():
            api_client.close()
        _clients.clear()


def preparations() -> ThreadPoolExecutor:
    """The hub's threads for :func:`prepare_blocking` (at most :data:`PREPARATION_WORKERS`), made at first use."""
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=PREPARATION_WORKERS, thread_name_prefix="occam-namespace")
        return _pool


def hub_user(api_client: Any) -> str:
    """The hub's own username as the API server knows it (:func:`spawner.apply.own_username`), asked once per
    API server and hub process."""
    host = str(getattr(getattr(api_client, "configuration", None), "host", ""))
    user = _hub_users.get(host)
    if user is None:
        user = _hub_users[host] = own_username(api_client)
    return user


def user_objects(
    settings: OccamSettings,
    username: str,
    limits: CourseLimits,
    prefix: str,
    *,
    hub_user: str | None,
    pull_secrets: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """Everything ``username``'s namespace holds under ``settings`` (pure): the builders' objects, and the
    work claim (``work_storage_class``) last. A setting the builders refuse is a ConfigError."""
    try:
        objects = namespace_objects(
            username,
            limits,
            hub_namespace=settings.hub_namespace,
            hub_selector=settings.hub_selector,
            hub_user=hub_user,
            notebook_cluster_role=settings.notebook_cluster_role,
            hub_namespace_role=settings.hub_namespace_role,
            prefix=prefix,
            pod_security_level=settings.pod_security_level,
            api_server_cidrs=settings.api_server_cidrs,
            dns_cidrs=settings.dns_cidrs,
            internet=settings.allow_internet,
            pull_secrets=pull_secrets,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if settings.work_storage_class:
        ns = namespace_name(username, prefix=prefix)
        objects.append(work_claim(ns, labels(username), settings.work_storage_class, settings.work_storage_size))
    return objects


def prepare_blocking(settings: OccamSettings, username: str, limits: CourseLimits, prefix: str) -> list[Applied]:
    """Create or update ``username``'s namespace objects with the hub's credentials; return what was done.
    Blocking: run it in :func:`preparations`."""
    api_client = shared_api_client(settings)
    pull_secrets = read_pull_secrets(
        api_client, settings.hub_namespace, list(settings.copied_pull_secrets), timeout=REQUEST_TIMEOUT_SECONDS
    )
    objects = user_objects(settings, username, limits, prefix, hub_user=hub_user(api_client), pull_secrets=pull_secrets)
    # The pull Secrets' copies and the work volume's claim need the hub's RoleBinding just applied
    # (prepare_namespace waits for it), and so does the notebook pod KubeSpawner makes next.
    applied = prepare_namespace(api_client, objects, timeout=REQUEST_TIMEOUT_SECONDS)
    wait_until_allowed(api_client, namespace_name(username, prefix=prefix), "create", "pods")
    return applied


__all__ = [
    "PREPARATION_WORKERS",
    "close_api_clients",
    "hub_user",
    "make_api_client",
    "preparations",
    "prepare_blocking",
    "shared_api_client",
    "user_objects",
]
