"""A real ``jupyterhub`` process on loopback, configured with OccamSpawner, and a small client of its REST API.

:class:`HubProcess` writes a ``jupyterhub_config.py`` into a temporary directory (sqlite database, cookie
secret and logs there too), starts ``jupyterhub`` with the real configurable-http-proxy on free loopback
ports, and waits for ``/hub/api`` to answer. The test talks to the hub as a JupyterHub service holding
an API token with admin scopes, the way jupyterhub-idle-culler and admin scripts do; users need no
login. The hub's Kubernetes credentials are the ``KUBECONFIG`` it is given (in these tests: a hub
service account bound to :func:`spawner.hub_rbac.hub_cluster_role` only).

Stopping sends SIGTERM (the hub then stops every server it runs, as at a real shutdown), waits, and
kills the whole process group: proxy and stand-in servers included.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.kubernetes.controlplane import free_port
from tests.kubernetes.processes import Harness, log_tail

REPO = Path(__file__).resolve().parents[2]
#: Installs the locked proxy (images/proxy/package-lock.json) into ~/.cache/occam/chp.
CHP_INSTALL = "make chp"

#: Scopes of the test's service token: manage users and servers, and reach servers through the proxy.
# tokens, shares: a second user's own token, and a student's server shared with them (tests/node).
SERVICE_SCOPES = ["admin:users", "admin:servers", "access:servers", "tokens", "shares"]


def find_chp() -> str | None:
    """The configurable-http-proxy command: the locked one :data:`CHP_INSTALL` puts in the cache, else one on PATH."""
    cached = Path.home() / ".cache" / "occam" / "chp" / "node_modules" / ".bin" / "configurable-http-proxy"
    if os.access(cached, os.X_OK):
        return str(cached)
    return shutil.which("configurable-http-proxy")


def hub_account_kubeconfig(admin: Any, path: Path, *, namespace: str = "occam-hub", account: str = "hub") -> Path:
    """Make the hub's ServiceAccount bound to :func:`spawner.hub_rbac.hub_cluster_role` only, and the two
    ClusterRoles it binds in student namespaces (the notebook's, its own in-namespace one); write its kubeconfig.

    ``admin`` is a cluster-admin ``kubernetes.client.ApiClient``. Idempotent, and ClusterRoles left by an
    older run get today's rules; the token (TokenRequest) lasts 2 hours.
    """
    from kubernetes import client

    from spawner.hub_rbac import (
        hub_cluster_role,
        hub_cluster_role_binding,
        hub_namespace_cluster_role,
        notebook_cluster_role,
    )
    from tests.kubernetes.pki import write_kubeconfig

    core = client.CoreV1Api(admin)
    rbac = client.RbacAuthorizationV1Api(admin)
    roles = [hub_cluster_role(), notebook_cluster_role(), hub_namespace_cluster_role()]
    for create in (
        lambda: core.create_namespace({"metadata": {"name": namespace}}),
        lambda: core.create_namespaced_service_account(namespace, {"metadata": {"name": account}}),
        *(lambda role=role: rbac.create_cluster_role(role) for role in roles),
        lambda: rbac.create_cluster_role_binding(hub_cluster_role_binding(account, namespace)),
    ):
        try:
            create()
        except client.ApiException as exc:
            if exc.status != 409:
                raise
    for role in roles:
        rbac.patch_cluster_role(role["metadata"]["name"], {"rules": role["rules"]})
    token = core.create_namespaced_service_account_token(
        account, namespace, {"spec": {"expirationSeconds": 7200}}
    ).status.token
    ca = admin.configuration.ssl_ca_cert
    return write_kubeconfig(
        path, admin.configuration.host, Path(ca).read_bytes() if ca else None, {"token": token}, namespace=namespace
    )


class HubError(RuntimeError):
    pass


class SpawnFailed(Exception):
    """The hub gave up on a spawn (its server is gone): not worth waiting for."""


class HubProcess(Harness):
    """``with HubProcess(dir, kubeconfig, spawner_config) as hub:``; ``hub.api(...)`` calls the REST API."""

    error = HubError
    poll_seconds = 0.25

    def __init__(
        self, workdir: Path, kubeconfig: Path, spawner_config: str, *, chp: str, timeout: float = 120.0
    ) -> None:
        super().__init__(timeout)
        self.dir = workdir
        self.kubeconfig = kubeconfig
        self.spawner_config = spawner_config
        self.chp = chp
        self.token = secrets.token_hex(32)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def config_text(self) -> str:
        hub_port, proxy_api = free_port(), free_port()
        return f"""# Written by tests/hub/hubprocess.py
c = get_config()  # noqa
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {self.port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api}"
c.ConfigurableHTTPProxy.command = [{self.chp!r}]
c.ConfigurableHTTPProxy.pid_file = {str(self.dir / "proxy.pid")!r}
c.ConfigurableHTTPProxy.auth_token = {secrets.token_hex(32)!r}
c.JupyterHub.db_url = "sqlite:///{self.dir / "jupyterhub.sqlite"}"
c.JupyterHub.cookie_secret = bytes.fromhex({secrets.token_hex(32)!r})
c.JupyterHub.pid_file = {str(self.dir / "jupyterhub.pid")!r}
c.JupyterHub.authenticator_class = "null"
c.JupyterHub.spawner_class = "occam"
c.JupyterHub.services = [{{"name": "occam-test", "api_token": {self.token!r}}}]
c.JupyterHub.load_roles = [{{"name": "occam-test", "scopes": {SERVICE_SCOPES!r}, "services": ["occam-test"]}}]
c.JupyterHub.cleanup_servers = True
c.Spawner.http_timeout = 180
c.Spawner.start_timeout = 180
{self.spawner_config}
"""

    def start(self) -> None:
        config = self.dir / "jupyterhub_config.py"
        config.write_text(self.config_text())
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
            "OCCAM_HUB_TEST_DIR": str(self.dir),
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        }
        self.spawn("jupyterhub", [str(Path(sys.executable).with_name("jupyterhub")), "-f", str(config), "--debug"], env)
        self.wait_until("the hub's REST API to answer (/hub/api/)", lambda: self.api("GET", "/") or None)

    def stop(self) -> None:
        # SIGTERM first: the hub stops every server it runs, as at a real shutdown; then the whole process
        # group goes (the proxy and stand-in servers, if left).
        self.kill("jupyterhub", grace=60)

    @property
    def alive(self) -> bool:
        return self.running("jupyterhub")

    def log_tail(self, lines: int = 60) -> str:
        return log_tail(self.log("jupyterhub"), lines)

    def wait_until(self, what: str, check: Any, timeout: float | None = None) -> Any:
        """Call ``check`` until it returns something truthy; fail naming ``what`` and the hub's log tail. A
        :class:`SpawnFailed` ends the wait at once."""
        return self.wait_for(what, "jupyterhub", check, timeout, give_up_on=(SpawnFailed,))

    # -- REST API ------------------------------------------------------------------------------------------

    def request(
        self, method: str, url: str, body: Any = None, timeout: float = 30, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        """``method url`` with the hub's service token (and ``body`` as JSON, and ``headers``): status and body."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
        req.add_header("Authorization", f"token {self.token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def api(self, method: str, path: str, body: Any = None, *, ok: tuple[int, ...] = (200, 201, 202, 204)) -> Any:
        status, raw = self.request(method, f"{self.url}/hub/api{path}", body)
        if status not in ok:
            raise HubError(f"{method} /hub/api{path} answered {status}: {raw[:500]!r}")
        return json.loads(raw) if raw else None

    def has_user(self, user: str) -> bool:
        return self.request("GET", f"{self.url}/hub/api/users/{user}")[0] == 200

    @contextlib.contextmanager
    def new_student(self, admin: Any) -> Iterator[str]:
        """A fresh username; afterwards its server is stopped (if left) and its namespace deleted (``admin``:
        a cluster-admin ``kubernetes.client.ApiClient``)."""
        from kubernetes import client

        from spawner.namespace import namespace_name

        name = f"student-{uuid.uuid4().hex[:6]}"
        yield name
        if self.alive and self.has_user(name) and self.server(name) is not None:
            self.stop_server(name)
        try:
            client.CoreV1Api(admin).delete_namespace(namespace_name(name))
        except client.ApiException as exc:
            if exc.status != 404:
                raise

    def server(self, user: str) -> dict[str, Any] | None:
        """The user's default server as the hub reports it (None when it has none)."""
        return (self.api("GET", f"/users/{user}").get("servers") or {}).get("")

    def progress_events(self, user: str, timeout: float = 60) -> Iterator[dict[str, Any]]:
        """The spawn's progress events (the page a student watches), until ready or failed."""
        req = urllib.request.Request(f"{self.url}/hub/api/users/{user}/server/progress")
        req.add_header("Authorization", f"token {self.token}")
        with urllib.request.urlopen(req, timeout=timeout) as response:
            for line in response:
                if line.startswith(b"data:"):
                    event = json.loads(line[5:])
                    yield event
                    if event.get("ready") or event.get("failed"):
                        return

    def start_server(self, user: str, options: dict[str, Any] | None = None) -> None:
        self.api("POST", f"/users/{user}", ok=(201, 409))
        self.api("POST", f"/users/{user}/server", options or {})

    def wait_ready(self, user: str, timeout: float | None = None) -> dict[str, Any]:
        def ready() -> dict[str, Any] | None:
            server = self.server(user)
            if server is None:
                raise SpawnFailed(f"{user}'s server is gone: the spawn failed (see the hub's log)")
            return server if server.get("ready") else None

        return self.wait_until(f"{user}'s server to be ready", ready, timeout)

    def wait_stopped(self, user: str, timeout: float | None = None) -> None:
        self.wait_until(f"{user}'s server to stop", lambda: self.server(user) is None, timeout)

    def stop_server(self, user: str) -> None:
        """Stop the user's server: ``DELETE /users/{name}/server``, the call jupyterhub-idle-culler makes."""
        self.api("DELETE", f"/users/{user}/server")
        self.wait_stopped(user)
