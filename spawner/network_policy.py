"""Pure builders of a student namespace's NetworkPolicies: deny everything, then allow what Occam needs.

NetworkPolicies add up: a connection is allowed when any policy that selects the pod allows it, and a
pod that some policy selects for a direction accepts (or makes) only what one allows. So the namespace
gets one policy that selects every pod for both directions and allows nothing
(:data:`DEFAULT_DENY`), and one small policy per path Occam needs, each naming its reason:

- :data:`DNS`: every pod may ask the cluster's DNS (pods of ``dns_namespace`` matching
  ``dns_selector``, and ``dns_cidrs``, e.g. NodeLocal DNSCache's 169.254.20.10) on port 53.
- :data:`CLUSTER`: Occam's pods of the namespace (the notebook, its executors, a batch job's driver)
  reach each other on every port: Spark's RPC and block manager, Horovod's driver and rendezvous
  services and Gloo's connections listen on ports chosen at run time. Nothing from another namespace
  is allowed in: another student's executor cannot reach these ports. Model services' pods are not
  among them (:data:`CLUSTER_PODS`).
- :data:`MODEL_SERVICE`: a model service's pod (``occam.models.serve`` on Kubernetes) accepts connections
  only from the student's own notebook, on :data:`~occam.contract.SERVING_PORT` (the notebook's
  jupyter-server-proxy is how the hub reaches it); it reaches nothing itself but DNS (and the internet
  when the course allows it). :data:`NOTEBOOK` lets the notebook connect to it.
- :data:`NOTEBOOK`: the hub and its proxy (pods of ``hub_namespace`` matching ``hub_selector``) reach
  Jupyter on ``notebook_port``; the notebook reaches them on ``hub_ports`` only (the hub's API, 8081,
  and the proxy's public port, 8000 in Zero to JupyterHub), not, say, the proxy's API (8001).
- :data:`API_SERVER`: the notebook and a batch job's driver, which create executor pods, reach the
  API server at ``api_server_cidrs`` on ``api_server_ports``. Executors never talk to it. Without
  ``api_server_cidrs`` (a chart installed where it could not read the API server's addresses) they
  may reach ``api_server_ports`` on any address: ``start_cluster`` works, at the price of those ports
  being open to the world for those two pods (the chart's NOTES warn).
- :data:`INTERNET`, only when ``internet`` is true: every pod reaches any address but the private
  ranges, carrier-grade NAT and link-local (:data:`NOT_INTERNET`), so neither other in-cluster services
  nor the cloud's metadata address (169.254.169.254) are reachable through it.

Enforcement is the CNI's: a cluster whose network plugin ignores NetworkPolicies (plain bridge,
flannel) enforces none of this; docs/security.md says how an admin checks.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from occam.contract import (
    APP_LABEL,
    APP_NAME,
    COMPONENT_LABEL,
    DRIVER_COMPONENT,
    NOTEBOOK_COMPONENT,
    SERVING_COMPONENT,
    SERVING_PORT,
)

DEFAULT_DENY = "occam-default-deny"
DNS = "occam-dns"
CLUSTER = "occam-cluster"
NOTEBOOK = "occam-notebook"
API_SERVER = "occam-api-server"
MODEL_SERVICE = "occam-model-service"
INTERNET = "occam-internet"

#: Policies that exist only with some settings: the spawner deletes them from a namespace whose course
#: no longer has those settings (:func:`withdrawn_policies`).
OPTIONAL = (INTERNET,)

#: What :data:`INTERNET` leaves out of 0.0.0.0/0: RFC 1918 (in-cluster services, the nodes, the
#: campus network), RFC 6598 carrier-grade NAT (some clouds' pod and service ranges) and link-local,
#: where clouds serve instance metadata and credentials (169.254.169.254).
NOT_INTERNET = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16")

#: Pods Occam makes in a student's namespace (notebook, executors, batch drivers) carry this label.
OCCAM_PODS: dict[str, str] = {APP_LABEL: APP_NAME}
#: The pods that call the API server: the notebook and a batch job's driver (both run Spark's driver).
API_CLIENTS: dict[str, Any] = {
    "matchLabels": dict(OCCAM_PODS),
    "matchExpressions": [{"key": COMPONENT_LABEL, "operator": "In", "values": [NOTEBOOK_COMPONENT, DRIVER_COMPONENT]}],
}
NOTEBOOK_SELECTOR: dict[str, str] = {APP_LABEL: APP_NAME, COMPONENT_LABEL: NOTEBOOK_COMPONENT}
#: Model services' pods (occam.kubernetes.serving): reached by the notebook alone.
MODEL_SERVICE_SELECTOR: dict[str, str] = {APP_LABEL: APP_NAME, COMPONENT_LABEL: SERVING_COMPONENT}
#: The pods of a student's Occam cluster, which reach each other on every port: Occam's pods but model services.
CLUSTER_PODS: dict[str, Any] = {
    "matchLabels": dict(OCCAM_PODS),
    "matchExpressions": [{"key": COMPONENT_LABEL, "operator": "NotIn", "values": [SERVING_COMPONENT]}],
}

#: The Jupyter server's port in the notebook pod, reached by the hub and its proxy.
NOTEBOOK_PORT = 8888
#: The hub's API (8081) and the proxy's public port (8000), as Zero to JupyterHub serves them.
HUB_PORTS = (8081, 8000)
#: The API server's port behind the ``kubernetes`` Service: 6443 (kubeadm, most clusters) or 443.
API_SERVER_PORTS = (443, 6443)


@dataclass(frozen=True)
class NetworkAccess:
    """What a student namespace's pods may reach and be reached by, besides each other (see the module)."""

    hub_namespace: str
    hub_selector: Mapping[str, str]
    hub_ports: Sequence[int] = HUB_PORTS
    notebook_port: int = NOTEBOOK_PORT
    api_server_cidrs: Sequence[str] = ()
    api_server_ports: Sequence[int] = API_SERVER_PORTS
    dns_namespace: str = "kube-system"
    dns_selector: Mapping[str, str] = field(default_factory=lambda: {"k8s-app": "kube-dns"})
    dns_cidrs: Sequence[str] = ()
    internet: bool = False

    def __post_init__(self) -> None:
        problem = check_network_access(self)
        if problem is not None:
            raise ValueError(problem)


def cidr_problem(name: str, cidrs: Sequence[str]) -> str | None:
    """What is wrong with the setting ``name``'s networks ``cidrs``, naming it; None if nothing is."""
    for cidr in cidrs:
        try:
            if "/" not in cidr:  # a bare address is a /32 to ipaddress; ask for the prefix to be written
                raise ValueError(cidr)
            ipaddress.ip_network(cidr, strict=True)
        except (TypeError, ValueError):
            return f"{name}: {cidr!r} is not a network such as '10.0.0.1/32' or '192.168.0.0/24' (host bits unset)"
    return None


def check_network_access(access: NetworkAccess) -> str | None:
    """What is wrong with ``access``, naming the setting; None if nothing is."""
    if not access.hub_selector:
        return "hub_selector must name at least one label of the hub's pods, or every pod of its namespace would match"
    for name, ports in (("hub_ports", access.hub_ports), ("api_server_ports", access.api_server_ports)):
        if not ports or not all(isinstance(p, int) and 0 < p < 65536 for p in ports):
            return f"{name}={list(ports)!r} must list at least one TCP port (1-65535)"
    if not access.dns_selector and not access.dns_cidrs:
        return "dns_selector or dns_cidrs must say where the cluster's DNS is, or no pod can resolve a name"
    return cidr_problem("api_server_cidrs", access.api_server_cidrs) or cidr_problem("dns_cidrs", access.dns_cidrs)


def _tcp(ports: Sequence[int]) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": port} for port in ports]


def _blocks(cidrs: Sequence[str]) -> list[dict[str, Any]]:
    return [{"ipBlock": {"cidr": cidr}} for cidr in cidrs]


def _policy(
    name: str, namespace: str, labels: Mapping[str, str], selector: Mapping[str, Any], **rules: list[Any]
) -> dict[str, Any]:
    """A NetworkPolicy of ``selector``'s pods with ``ingress``/``egress`` rules; each direction named is denied
    unless a rule (of this or another policy) allows it."""
    types = [kind for kind in ("Ingress", "Egress") if kind.lower() in rules]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": {"podSelector": dict(selector), "policyTypes": types, **rules},
    }


def _hub_peers(access: NetworkAccess) -> list[dict[str, Any]]:
    return [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": access.hub_namespace}},
            "podSelector": {"matchLabels": dict(access.hub_selector)},
        }
    ]


def network_policies(namespace: str, labels: Mapping[str, str], access: NetworkAccess) -> list[dict[str, Any]]:
    """The NetworkPolicies of the student namespace ``namespace`` (each labelled ``labels``), default deny first."""
    occam = [{"podSelector": CLUSTER_PODS}]
    dns = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": access.dns_namespace}}}]
    if access.dns_selector:
        dns[0]["podSelector"] = {"matchLabels": dict(access.dns_selector)}
    else:
        dns = []
    dns_ports = [{"protocol": protocol, "port": 53} for protocol in ("UDP", "TCP")]
    policies = [
        _policy(DEFAULT_DENY, namespace, labels, {}, ingress=[], egress=[]),
        _policy(DNS, namespace, labels, {}, egress=[{"to": dns + _blocks(access.dns_cidrs), "ports": dns_ports}]),
        _policy(CLUSTER, namespace, labels, CLUSTER_PODS, ingress=[{"from": occam}], egress=[{"to": occam}]),
        _policy(
            NOTEBOOK,
            namespace,
            labels,
            {"matchLabels": dict(NOTEBOOK_SELECTOR)},
            ingress=[{"from": _hub_peers(access), "ports": _tcp([access.notebook_port])}],
            egress=[
                {"to": _hub_peers(access), "ports": _tcp(access.hub_ports)},
                {"to": [{"podSelector": {"matchLabels": dict(MODEL_SERVICE_SELECTOR)}}], "ports": _tcp([SERVING_PORT])},
            ],
        ),
        _policy(
            MODEL_SERVICE,
            namespace,
            labels,
            {"matchLabels": dict(MODEL_SERVICE_SELECTOR)},
            ingress=[
                {"from": [{"podSelector": {"matchLabels": dict(NOTEBOOK_SELECTOR)}}], "ports": _tcp([SERVING_PORT])}
            ],
        ),
    ]
    # No "to": any address, on the API server's ports only (see the module).
    api: dict[str, Any] = {"ports": _tcp(access.api_server_ports)}
    if access.api_server_cidrs:
        api["to"] = _blocks(access.api_server_cidrs)
    policies.append(_policy(API_SERVER, namespace, labels, API_CLIENTS, egress=[api]))
    if access.internet:
        world = [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": list(NOT_INTERNET)}}]}]
        policies.append(_policy(INTERNET, namespace, labels, {}, egress=world))
    return policies


def withdrawn_policies(objects: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(namespace, name) of each :data:`OPTIONAL` policy that ``objects`` (a namespace's, from
    :func:`network_policies`) lack: it must go, e.g. :data:`INTERNET` once an admin turned the internet off."""
    present = {(o["metadata"].get("namespace"), o["metadata"]["name"]) for o in objects if o["kind"] == "NetworkPolicy"}
    namespaces = sorted({ns for ns, _ in present if ns})
    return [(ns, name) for ns in namespaces for name in OPTIONAL if (ns, name) not in present]


__all__ = [
    "API_SERVER",
    "API_SERVER_PORTS",
    "CLUSTER",
    "DEFAULT_DENY",
    "DNS",
    "HUB_PORTS",
    "INTERNET",
    "MODEL_SERVICE",
    "NOTEBOOK",
    "NOTEBOOK_PORT",
    "NOT_INTERNET",
    "OPTIONAL",
    "NetworkAccess",
    "check_network_access",
    "cidr_problem",
    "network_policies",
    "withdrawn_policies",
]
