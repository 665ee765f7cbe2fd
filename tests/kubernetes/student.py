"""A student's namespace as OccamSpawner will make it: a service account allowed only what a cluster needs there.

:func:`create_student_namespace` makes the namespace, a ServiceAccount, a Role with exactly the access
``start_cluster`` needs in that namespace, and a RoleBinding; it then asks the TokenRequest API for a
short-lived token of that account and writes a kubeconfig using it. Code run with that kubeconfig sees
the cluster as a notebook pod does: RBAC decides, not the test's admin credentials. The namespace
enforces Pod Security's ``restricted`` level, as OccamSpawner's do, so every pod a test makes in it must
meet it (:func:`restricted_pod_spec`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spawner.namespace import NOTEBOOK_RULES, pod_security_labels

from .pki import write_kubeconfig

SERVICE_ACCOUNT = "occam-student"
ROLE = "occam-student"

#: What the notebook's service account may do in its own namespace, and nothing elsewhere: the Role
#: OccamSpawner grants (:data:`spawner.namespace.NOTEBOOK_RULES`).
STUDENT_RULES: list[dict[str, Any]] = NOTEBOOK_RULES


def restricted_pod_spec(*containers: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A pod spec of ``containers`` that meets Pod Security's ``restricted`` level (non-root, no privilege
    escalation, no capabilities, the runtime's seccomp profile), as every Occam pod does; ``fields`` are
    added to the spec."""
    restricted = {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    return {
        "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [
            {**c, "securityContext": {**restricted, **(c.get("securityContext") or {})}} for c in containers
        ],
        **fields,
    }


@dataclass(frozen=True)
class StudentNamespace:
    """A namespace and the kubeconfig of its student service account."""

    name: str
    service_account: str
    kubeconfig: Path


def wait_until(what: str, check: Any, timeout: float = 60.0, interval: float = 0.2) -> Any:
    """Call ``check`` until it returns something truthy; exceptions count as not yet. Raise after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            result = check()
            if result:
                return result
        except Exception as exc:
            last = exc
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what} (last error: {last})")
        time.sleep(interval)


def create_student_namespace(
    admin: Any, name: str, kubeconfig_dir: Path, *, token_seconds: int = 3600, restricted: bool = True
) -> StudentNamespace:
    """Make namespace ``name`` with the student account and role; write ``<dir>/<name>.kubeconfig``.

    With ``restricted`` (the default) the namespace enforces Pod Security's ``restricted`` level, as the
    spawner's do; without it, the cluster's default (``privileged``) applies.

    ``admin`` is a ``kubernetes.client.ApiClient`` with cluster-admin rights. Waits for the namespace's
    ``default`` ServiceAccount (made by the controller manager), since the ServiceAccount admission
    plugin refuses pods until it exists.
    """
    from kubernetes import client

    core = client.CoreV1Api(admin)
    rbac = client.RbacAuthorizationV1Api(admin)
    labels = {"occam.io/test": "true", **(pod_security_labels() if restricted else {})}
    core.create_namespace({"metadata": {"name": name, "labels": labels}})
    core.create_namespaced_service_account(name, {"metadata": {"name": SERVICE_ACCOUNT}})
    rbac.create_namespaced_role(name, {"metadata": {"name": ROLE}, "rules": STUDENT_RULES})
    rbac.create_namespaced_role_binding(
        name,
        {
            "metadata": {"name": ROLE},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": ROLE},
            "subjects": [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": name}],
        },
    )
    wait_until(
        f"the ServiceAccount 'default' in namespace {name} (made by kube-controller-manager)",
        lambda: core.read_namespaced_service_account("default", name),
    )
    token = core.create_namespaced_service_account_token(
        SERVICE_ACCOUNT, name, {"spec": {"expirationSeconds": token_seconds}}
    ).status.token
    configuration = admin.configuration
    ca_pem = Path(configuration.ssl_ca_cert).read_bytes() if configuration.ssl_ca_cert else None
    path = write_kubeconfig(
        kubeconfig_dir / f"{name}.kubeconfig", configuration.host, ca_pem, {"token": token}, namespace=name
    )
    return StudentNamespace(name=name, service_account=SERVICE_ACCOUNT, kubeconfig=path)


def delete_namespaces(core: Any, namespaces: list[str], *, timeout: float = 120) -> None:
    """Delete ``namespaces`` (those already gone are fine) and wait until each is gone, pods and all."""
    from kubernetes import client

    for ns in namespaces:
        try:
            core.delete_namespace(ns)
        except client.ApiException as exc:
            if exc.status != 404:
                raise

    def gone(ns: str) -> bool:
        try:
            core.read_namespace(ns)
        except client.ApiException as exc:
            return bool(exc.status == 404)
        return False

    for ns in namespaces:
        wait_until(f"namespace {ns} to go", lambda ns=ns: gone(ns), timeout=timeout)


def namespace_report(admin: Any, namespace: str) -> str:
    """The namespace's pods (phase, node, reason) and events, oldest first: printed when a test fails."""
    from kubernetes import client

    core = client.CoreV1Api(admin)
    lines = [f"pods in {namespace}:"]
    for pod in core.list_namespaced_pod(namespace).items:
        status = pod.status
        lines.append(
            f"  {pod.metadata.name}: phase={status.phase} node={pod.spec.node_name} "
            f"reason={status.reason} labels={pod.metadata.labels}"
        )
    lines.append(f"events in {namespace}:")
    events = sorted(
        core.list_namespaced_event(namespace).items,
        key=lambda e: str(e.last_timestamp or e.event_time or e.metadata.creation_timestamp),
    )
    for event in events:
        obj = event.involved_object
        lines.append(f"  {obj.kind}/{obj.name}: {event.type} {event.reason}: {event.message}")
    return "\n".join(lines)


def wait_running(core: Any, namespace: str, name: str) -> Any:
    def running() -> Any:
        pod = core.read_namespaced_pod(name, namespace)
        return pod if pod.status.phase == "Running" and pod.status.pod_ip else None

    return wait_until(f"pod {namespace}/{name} to be scheduled and reported Running", running)


@dataclass
class Tally:
    """Hostile attempts made and refused (by name), for a module's closing line."""

    attempts: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)


def report_tally(request: Any, tally: Tally, who: str) -> None:
    """Print ``tally`` past pytest's capture, so that it shows on a passing run too."""
    unrefused = sorted(set(tally.attempts) - set(tally.refused))
    line = f"{who}: {len(tally.attempts)} attempts, {len(tally.refused)} refused by the cluster"
    if unrefused:
        line += f"; NOT refused: {', '.join(unrefused)}"
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if capture is None or reporter is None:
        print(line)
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line("")
        reporter.write_line(line)
