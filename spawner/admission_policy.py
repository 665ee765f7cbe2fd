"""Pure builders of the ValidatingAdmissionPolicies that guard every student namespace, and their bindings.

Pod Security admission (the namespace's labels, :func:`spawner.namespace.pod_security_labels`) stops
privileged pods, host namespaces and host paths; RBAC and the ResourceQuota stop the rest of what a
student's Role would otherwise allow. What neither covers, these policies refuse, in every namespace
labelled ``app.kubernetes.io/managed-by: occam-spawner`` (the spawner labels each student namespace so,
and a student cannot label a namespace):

- a pod that names its node (``spec.nodeName``): it would skip the scheduler, and with it taints (a GPU
  node kept for GPU pods), node selectors and the node's capacity;
- a pod with a ``priorityClassName`` the admin did not allow: a high priority lets a student's pods
  preempt (evict) other students' pods;
- a Service other than ClusterIP (headless included): NodePort, LoadBalancer and ExternalName Services
  open the student's pods to the world or point cluster names elsewhere (the quota also allows no
  NodePort or LoadBalancer);
- a Service with ``externalIPs``, which can intercept traffic to those addresses (CVE-2020-8554).

They are enforced by the API server itself (``admissionregistration.k8s.io/v1``, on by default since
Kubernetes 1.30): no webhook to run. The chart ships them (templates/admission-policy.yaml, which
tests/chart checks against these builders); :func:`admission_objects` is what tests install.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from typing import Any

from occam.contract import MANAGED_BY_LABEL
from spawner.namespace import MANAGED_BY

PODS_POLICY = "occam-student-pods"
SERVICES_POLICY = "occam-student-services"
HUB_POLICY = "occam-hub-scope"

#: Selects every student namespace the spawner made (it sets this label; students cannot change it).
NAMESPACE_SELECTOR: dict[str, Any] = {"matchLabels": {MANAGED_BY_LABEL: MANAGED_BY}}


def _selector() -> dict[str, Any]:
    return copy.deepcopy(NAMESPACE_SELECTOR)


_ADMISSION = "admissionregistration.k8s.io/v1"
_PRIORITY_CLASS = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")


def check_priority_classes(names: Sequence[str]) -> list[str]:
    """``names`` as a list if each is a valid PriorityClass name (a DNS subdomain), else ValueError."""
    names = list(names)
    for name in names:
        if not isinstance(name, str) or not _PRIORITY_CLASS.fullmatch(name):
            raise ValueError(
                f"priority class {name!r} is not a PriorityClass name: lowercase letters, digits, '-' and '.', "
                "e.g. 'student-batch'"
            )
    return names


def _cel_list(names: Sequence[str]) -> str:
    # Names are DNS subdomains (checked above): no quote or backslash can end up inside the literal.
    return "[" + ", ".join(f"'{name}'" for name in names) + "]"


def pods_policy(allowed_priority_classes: Sequence[str] = (), *, name: str = PODS_POLICY) -> dict[str, Any]:
    """The policy on pods created in student namespaces: no ``nodeName``, no priority class but the allowed.

    Only CREATE: the scheduler sets ``nodeName`` through the ``pods/binding`` subresource, and it cannot
    change afterwards, so a later UPDATE (the garbage collector's, a label patch) of a placed pod is fine.
    """
    allowed = check_priority_classes(allowed_priority_classes)
    if allowed:
        priority = f"!has(object.spec.priorityClassName) || object.spec.priorityClassName in {_cel_list(allowed)}"
        priority_message = (
            f"pods in a student namespace may use only the priority classes {', '.join(allowed)} "
            "(the chart's occam.admissionPolicy.allowedPriorityClasses)"
        )
    else:
        priority = "!has(object.spec.priorityClassName) || object.spec.priorityClassName == ''"
        priority_message = (
            "pods in a student namespace may not set a priority class: a higher priority would evict other "
            "students' pods (an admin may allow some in occam.admissionPolicy.allowedPriorityClasses)"
        )
    return _policy(
        name,
        resource="pods",
        operations=["CREATE"],
        validations=[
            _forbid(
                "!has(object.spec.nodeName) || object.spec.nodeName == ''",
                "pods in a student namespace may not name a node (spec.nodeName): the scheduler places "
                "them, honouring taints, selectors and capacity",
            ),
            _forbid(priority, priority_message),
        ],
    )


def services_policy(*, name: str = SERVICES_POLICY) -> dict[str, Any]:
    """The policy on Services created or changed in student namespaces: ClusterIP (or headless) only, no
    ``externalIPs``."""
    return _policy(
        name,
        resource="services",
        operations=["CREATE", "UPDATE"],
        validations=[
            _forbid(
                "!has(object.spec.type) || object.spec.type == 'ClusterIP'",
                "Services in a student namespace must be ClusterIP (or headless): NodePort, LoadBalancer "
                "and ExternalName Services reach outside the student's namespace",
            ),
            _forbid(
                "!has(object.spec.externalIPs) || size(object.spec.externalIPs) == 0",
                "Services in a student namespace may not set externalIPs (they can capture others' traffic)",
            ),
        ],
    )


def _forbid(expression: str, message: str) -> dict[str, str]:
    """A validation that refuses (reason Forbidden) what does not satisfy the CEL ``expression``."""
    return {"expression": expression, "message": message, "reason": "Forbidden"}


def _admission_policy(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """A ValidatingAdmissionPolicy of Occam's, labelled as such; a failing check refuses (``failurePolicy``)."""
    return {
        "apiVersion": _ADMISSION,
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name, "labels": {MANAGED_BY_LABEL: MANAGED_BY}},
        "spec": {"failurePolicy": "Fail", **spec},
    }


def _policy(name: str, *, resource: str, operations: list[str], validations: list[dict[str, str]]) -> dict[str, Any]:
    """A ValidatingAdmissionPolicy on core ``resource`` objects of the student namespaces; failures refuse."""
    rule = {"apiGroups": [""], "apiVersions": ["v1"], "operations": operations, "resources": [resource]}
    return _admission_policy(
        name,
        {"matchConstraints": {"namespaceSelector": _selector(), "resourceRules": [rule]}, "validations": validations},
    )


_MANAGED = f"'{MANAGED_BY_LABEL}'"


def hub_policy(hub_user: str, *, name: str = HUB_POLICY) -> dict[str, Any]:
    """What keeps the hub's account (``hub_user``, e.g. ``system:serviceaccount:jhub:occam-hub``) to Occam's
    namespaces, in every namespace: it may make RoleBindings (spawner.hub_rbac: it binds the notebook's and its
    own in-namespace ClusterRoles) only in a namespace the spawner made, and change only namespaces the
    spawner made. Without it, the hub could bind itself in kube-system and create pods there."""
    if not re.fullmatch(r"[A-Za-z0-9:._@-]+", hub_user):
        raise ValueError(f"hub user {hub_user!r} is not a Kubernetes username such as system:serviceaccount:jhub:hub")
    managed = f"has({{0}}.metadata.labels) && {_MANAGED} in {{0}}.metadata.labels && {{0}}.metadata.labels[{_MANAGED}] == '{MANAGED_BY}'"
    return _admission_policy(
        name,
        {
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": ["rbac.authorization.k8s.io"],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["rolebindings"],
                    },
                    {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["UPDATE"], "resources": ["namespaces"]},
                ]
            },
            "matchConditions": [{"name": "the-hub", "expression": f"request.userInfo.username == '{hub_user}'"}],
            "validations": [
                _forbid(
                    f"request.resource.resource != 'rolebindings' || ({managed.format('namespaceObject')})",
                    "the hub may make RoleBindings only in namespaces Occam's spawner made "
                    f"({MANAGED_BY_LABEL}={MANAGED_BY})",
                ),
                _forbid(
                    f"request.resource.resource != 'namespaces' || ({managed.format('oldObject')})",
                    f"the hub may change only namespaces Occam's spawner made ({MANAGED_BY_LABEL}={MANAGED_BY})",
                ),
            ],
        },
    )


def hub_binding(policy: dict[str, Any]) -> dict[str, Any]:
    """The binding of :func:`hub_policy`: everywhere (its match condition picks the hub's requests)."""
    made = binding(policy)
    del made["spec"]["matchResources"]
    return made


def binding(policy: dict[str, Any]) -> dict[str, Any]:
    """The ValidatingAdmissionPolicyBinding that makes ``policy`` refuse (``Deny``) in every student namespace."""
    name = policy["metadata"]["name"]
    return {
        "apiVersion": _ADMISSION,
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name, "labels": dict(policy["metadata"]["labels"])},
        "spec": {
            "policyName": name,
            "validationActions": ["Deny"],
            "matchResources": {"namespaceSelector": _selector()},
        },
    }


def admission_objects(allowed_priority_classes: Sequence[str] = (), *, prefix: str = "") -> list[dict[str, Any]]:
    """Both policies and their bindings, in the order to create them; ``prefix`` starts each name (a release)."""
    policies = [
        pods_policy(allowed_priority_classes, name=prefix + PODS_POLICY),
        services_policy(name=prefix + SERVICES_POLICY),
    ]
    return [*policies, *(binding(policy) for policy in policies)]


__all__ = [
    "HUB_POLICY",
    "NAMESPACE_SELECTOR",
    "PODS_POLICY",
    "SERVICES_POLICY",
    "admission_objects",
    "binding",
    "check_priority_classes",
    "hub_binding",
    "hub_policy",
    "pods_policy",
    "services_policy",
]
