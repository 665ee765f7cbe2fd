"""The student namespace's NetworkPolicies, read as the API defines them.

:func:`allowed` evaluates policies by the NetworkPolicy API's rules (a pod selected for a direction
by some policy accepts only what one of them allows; peers are pods by namespace and labels, or IP
blocks with exceptions; ports by number and range): the tests ask which connections the spawner's
policies let through, not how the dicts look. The real enforcement is tested on the real node
(tests/node/test_network_policy.py).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

import pytest

from occam.contract import SERVING_PORT
from spawner.limits import CourseLimits
from spawner.namespace import NOTEBOOK_LABELS, namespace_name, namespace_objects
from spawner.network_policy import (
    API_SERVER,
    DEFAULT_DENY,
    INTERNET,
    NOT_INTERNET,
    NetworkAccess,
    network_policies,
    withdrawn_policies,
)

LIMITS = CourseLimits(max_executors=2, cpu="4", memory="8Gi")
HUB = {"hub_namespace": "jhub", "hub_selector": {"app": "jupyterhub", "release": "occam"}}
API = "10.0.0.5/32"


@dataclass(frozen=True)
class Pod:
    namespace: str
    labels: dict[str, str] = field(default_factory=dict)
    ip: str = "10.244.0.10"


def _labels_match(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] in ("In", "NotIn"), expression
        inside = labels.get(expression["key"]) in expression["values"]  # an absent key is in no set
        if inside != (expression["operator"] == "In"):
            return False
    return True


def _peer_matches(peer: dict[str, Any], policy_namespace: str, other: Pod | str) -> bool:
    if "ipBlock" in peer:
        if isinstance(other, Pod):
            return False  # pods are matched by selectors here (as by implementations, for pod IPs)
        address = ipaddress.ip_address(other)
        block = peer["ipBlock"]
        return address in ipaddress.ip_network(block["cidr"]) and not any(
            address in ipaddress.ip_network(e) for e in block.get("except", [])
        )
    if not isinstance(other, Pod):
        return False
    if "namespaceSelector" in peer:
        namespace_labels = {"kubernetes.io/metadata.name": other.namespace}
        if not _labels_match(peer["namespaceSelector"], namespace_labels):
            return False
    elif other.namespace != policy_namespace:
        return False
    return _labels_match(peer.get("podSelector", {}), other.labels)


def _port_matches(rule: dict[str, Any], port: int, protocol: str) -> bool:
    ports = rule.get("ports")
    if not ports:
        return True
    return any(p.get("protocol", "TCP") == protocol and p["port"] <= port <= p.get("endPort", p["port"]) for p in ports)


def _direction_allows(policies, pod: Pod, direction: str, other: Pod | str, port: int, protocol: str) -> bool:
    selecting = [
        p
        for p in policies
        if p["metadata"]["namespace"] == pod.namespace
        and direction.capitalize() in p["spec"]["policyTypes"]
        and _labels_match(p["spec"]["podSelector"], pod.labels)
    ]
    if not selecting:
        return True  # isolated in neither direction by any policy
    key = "from" if direction == "ingress" else "to"
    for policy in selecting:
        for rule in policy["spec"].get(direction, []):
            peers = rule.get(key)
            peer_ok = peers is None or any(_peer_matches(p, pod.namespace, other) for p in peers)
            if peer_ok and _port_matches(rule, port, protocol):
                return True
    return False


def allowed(policies, source: Pod | str, destination: Pod | str, port: int, protocol: str = "TCP") -> bool:
    """Whether a connection from ``source`` to ``destination`` (pods, or IP addresses outside the cluster's
    pods) on ``port`` passes both the source's egress and the destination's ingress policies."""
    egress = not isinstance(source, Pod) or _direction_allows(policies, source, "egress", destination, port, protocol)
    ingress = not isinstance(destination, Pod) or _direction_allows(
        policies, destination, "ingress", source, port, protocol
    )
    return egress and ingress


NS = namespace_name("ada")
OTHER = namespace_name("bob")
NOTEBOOK = Pod(NS, dict(NOTEBOOK_LABELS))
EXECUTOR = Pod(NS, {"app.kubernetes.io/name": "occam", "app.kubernetes.io/component": "executor"})
DRIVER = Pod(NS, {"app.kubernetes.io/name": "occam", "app.kubernetes.io/component": "driver"})
STRANGER_IN_NS = Pod(NS, {"app": "mine"})
MODEL_SERVICE = Pod(NS, {"app.kubernetes.io/name": "occam", "app.kubernetes.io/component": "model-service"})
OTHER_MODEL_SERVICE = Pod(OTHER, dict(MODEL_SERVICE.labels))
OTHER_EXECUTOR = Pod(OTHER, dict(EXECUTOR.labels))
OTHER_NOTEBOOK = Pod(OTHER, dict(NOTEBOOK_LABELS))
HUB_POD = Pod("jhub", {"app": "jupyterhub", "release": "occam", "component": "hub"})
PROXY_POD = Pod("jhub", {"app": "jupyterhub", "release": "occam", "component": "proxy"})
DNS_POD = Pod("kube-system", {"k8s-app": "kube-dns"})
KUBE_SYSTEM_OTHER = Pod("kube-system", {"k8s-app": "metrics-server"})


def _policies(**settings: Any) -> list[dict[str, Any]]:
    """Both students' policies, as the spawner makes them."""
    objects = [
        *namespace_objects("ada", LIMITS, **HUB, **settings),
        *namespace_objects("bob", LIMITS, **HUB, **settings),
    ]
    return [o for o in objects if o["kind"] == "NetworkPolicy"]


def test_the_student_s_own_pods_reach_each_other_on_every_port():
    policies = _policies(api_server_cidrs=[API])
    for port in (7078, 7079, 4040, 40123, 1, 65535):  # Spark RPC, block manager, UI, Horovod/Gloo ports
        assert allowed(policies, EXECUTOR, NOTEBOOK, port)
        assert allowed(policies, NOTEBOOK, EXECUTOR, port)
        assert allowed(policies, EXECUTOR, EXECUTOR, port)
        assert allowed(policies, DRIVER, EXECUTOR, port)


def test_a_model_service_is_reached_by_the_student_s_own_notebook_alone_on_its_port():
    policies = _policies(api_server_cidrs=[API], internet=False)
    assert allowed(policies, NOTEBOOK, MODEL_SERVICE, SERVING_PORT)
    assert not allowed(policies, NOTEBOOK, MODEL_SERVICE, 22)
    for other in (EXECUTOR, DRIVER, STRANGER_IN_NS, OTHER_NOTEBOOK, OTHER_EXECUTOR, HUB_POD, PROXY_POD):
        assert not allowed(policies, other, MODEL_SERVICE, SERVING_PORT), other
    assert not allowed(policies, OTHER_NOTEBOOK, OTHER_MODEL_SERVICE, 22)
    assert allowed(policies, OTHER_NOTEBOOK, OTHER_MODEL_SERVICE, SERVING_PORT)  # bob's own
    assert not allowed(policies, NOTEBOOK, OTHER_MODEL_SERVICE, SERVING_PORT)
    # It reaches nothing itself but DNS: not the notebook, executors, the hub, the API server.
    for port in (7078, 8888, 40123):
        assert not allowed(policies, MODEL_SERVICE, NOTEBOOK, port)
        assert not allowed(policies, MODEL_SERVICE, EXECUTOR, port)
    assert not allowed(policies, MODEL_SERVICE, HUB_POD, 8081)
    assert not allowed(policies, MODEL_SERVICE, "10.0.0.5", 6443)
    assert allowed(policies, MODEL_SERVICE, DNS_POD, 53, "UDP")


def test_another_student_s_pods_reach_nothing_and_are_reached_by_nothing():
    policies = _policies(api_server_cidrs=[API], internet=True)
    for port in (7078, 7079, 8888, 40123):
        assert not allowed(policies, OTHER_EXECUTOR, EXECUTOR, port)
        assert not allowed(policies, OTHER_EXECUTOR, NOTEBOOK, port)
        assert not allowed(policies, OTHER_NOTEBOOK, NOTEBOOK, port)
        assert not allowed(policies, EXECUTOR, OTHER_EXECUTOR, port)
        assert not allowed(policies, KUBE_SYSTEM_OTHER, EXECUTOR, port)


def test_a_pod_the_student_made_without_occam_s_labels_reaches_nothing_but_dns():
    policies = _policies(api_server_cidrs=[API], internet=False)
    assert not allowed(policies, STRANGER_IN_NS, NOTEBOOK, 7078)
    assert not allowed(policies, STRANGER_IN_NS, "10.0.0.5", 6443)
    assert not allowed(policies, STRANGER_IN_NS, HUB_POD, 8081)
    assert allowed(policies, STRANGER_IN_NS, DNS_POD, 53, "UDP")


def test_the_hub_and_proxy_reach_jupyter_only():
    policies = _policies(api_server_cidrs=[API])
    assert allowed(policies, HUB_POD, NOTEBOOK, 8888)
    assert allowed(policies, PROXY_POD, NOTEBOOK, 8888)
    assert not allowed(policies, HUB_POD, NOTEBOOK, 7078)
    assert not allowed(policies, HUB_POD, EXECUTOR, 8888)
    assert not allowed(policies, Pod("jhub", {"app": "other"}), NOTEBOOK, 8888)
    assert not allowed(policies, Pod("elsewhere", dict(HUB_POD.labels)), NOTEBOOK, 8888)


def test_the_notebook_reaches_the_hub_api_and_the_proxy_s_public_port_only():
    policies = _policies(api_server_cidrs=[API])
    assert allowed(policies, NOTEBOOK, HUB_POD, 8081)
    assert allowed(policies, NOTEBOOK, PROXY_POD, 8000)
    assert not allowed(policies, NOTEBOOK, PROXY_POD, 8001)  # the proxy's API
    assert not allowed(policies, NOTEBOOK, HUB_POD, 22)
    assert not allowed(policies, EXECUTOR, HUB_POD, 8081)  # executors have no business there


def test_dns_is_kube_system_s_dns_pods_and_the_listed_addresses():
    policies = _policies(api_server_cidrs=[API], dns_cidrs=["169.254.20.10/32"])
    for pod in (NOTEBOOK, EXECUTOR, STRANGER_IN_NS):
        assert allowed(policies, pod, DNS_POD, 53, "UDP")
        assert allowed(policies, pod, DNS_POD, 53, "TCP")
        assert allowed(policies, pod, "169.254.20.10", 53, "UDP")
        assert not allowed(policies, pod, KUBE_SYSTEM_OTHER, 53, "UDP")
        assert not allowed(policies, pod, DNS_POD, 80)
        assert not allowed(policies, pod, "169.254.169.254", 53, "UDP")


def test_the_api_server_is_reached_by_the_notebook_and_batch_drivers_only():
    policies = _policies(api_server_cidrs=[API, "192.168.7.0/30"])
    for port in (443, 6443):
        assert allowed(policies, NOTEBOOK, "10.0.0.5", port)
        assert allowed(policies, DRIVER, "192.168.7.2", port)
        assert not allowed(policies, EXECUTOR, "10.0.0.5", port)
    assert not allowed(policies, NOTEBOOK, "10.0.0.5", 2379)  # etcd, on the same machine
    assert not allowed(policies, NOTEBOOK, "10.0.0.6", 6443)


def test_without_the_api_servers_addresses_its_ports_are_open_on_any_address_to_its_clients_only():
    """What a chart installed where it could not read the API server's addresses gets (NOTES warns)."""
    policies = _policies()
    (api,) = [p for p in policies if p["metadata"]["name"] == API_SERVER and p["metadata"]["namespace"] == NS]
    assert api["spec"]["egress"] == [{"ports": [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 6443}]}]
    for port in (443, 6443):
        assert allowed(policies, NOTEBOOK, "10.0.0.6", port)
        assert allowed(policies, DRIVER, "203.0.113.7", port)
        assert not allowed(policies, EXECUTOR, "10.0.0.6", port)
    assert not allowed(policies, NOTEBOOK, "10.0.0.6", 2379)
    assert not allowed(policies, NOTEBOOK, "203.0.113.7", 80)


@pytest.mark.parametrize("address", ["169.254.169.254", "10.1.2.3", "172.20.0.1", "192.168.1.1", "100.100.100.200"])
def test_the_metadata_service_and_private_ranges_are_never_reached(address):
    for internet in (False, True):
        policies = _policies(api_server_cidrs=[API], internet=internet)
        for pod in (NOTEBOOK, EXECUTOR):
            assert not allowed(policies, pod, address, 80)
            assert not allowed(policies, pod, address, 443)


def test_the_internet_only_when_the_course_allows_it():
    assert not allowed(_policies(api_server_cidrs=[API]), NOTEBOOK, "151.101.0.223", 443)
    policies = _policies(api_server_cidrs=[API], internet=True)
    for pod in (NOTEBOOK, EXECUTOR):
        assert allowed(policies, pod, "151.101.0.223", 443)
        assert allowed(policies, pod, "8.8.8.8", 53, "UDP")
    assert set(NOT_INTERNET) >= {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16"}


def test_the_default_deny_selects_every_pod_both_ways_and_comes_first():
    first = network_policies(NS, {}, NetworkAccess(**HUB))[0]
    assert first["metadata"]["name"] == DEFAULT_DENY
    assert first["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"], "ingress": [], "egress": []}


def test_a_setting_turned_off_withdraws_its_policy():
    on = namespace_objects("ada", LIMITS, **HUB, api_server_cidrs=[API], internet=True)
    assert withdrawn_policies(on) == []
    off = namespace_objects("ada", LIMITS, **HUB)
    assert withdrawn_policies(off) == [(NS, INTERNET)]
    assert withdrawn_policies([o for o in off if o["kind"] != "NetworkPolicy"]) == []


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"hub_selector": {}}, "hub_selector must name"),
        ({"api_server_cidrs": ["10.0.0.5"]}, "api_server_cidrs: '10.0.0.5' is not a network"),
        ({"api_server_cidrs": ["10.0.0.5/24"]}, "host bits"),
        ({"dns_cidrs": ["nameserver"]}, "dns_cidrs"),
        ({"hub_ports": ()}, "hub_ports"),
        ({"api_server_ports": (0,)}, "api_server_ports"),
        ({"dns_selector": {}}, "dns_selector or dns_cidrs"),
    ],
)
def test_bad_settings_are_refused_naming_the_setting(settings, message):
    with pytest.raises(ValueError, match=message):
        NetworkAccess(**{**HUB, **settings})
