"""The ValidatingAdmissionPolicies of student namespaces, as pure objects (the kubernetes tier's
tests/kubernetes/test_hostile_student.py installs them and checks what they refuse)."""

from __future__ import annotations

import pytest

from spawner.admission_policy import (
    NAMESPACE_SELECTOR,
    admission_objects,
    binding,
    check_priority_classes,
    pods_policy,
    services_policy,
)


def _expressions(policy):
    return [v["expression"] for v in policy["spec"]["validations"]]


def test_both_policies_select_the_spawner_s_namespaces_and_are_bound_to_deny():
    items = admission_objects(prefix="jhub-occam-")
    assert [(i["kind"], i["metadata"]["name"]) for i in items] == [
        ("ValidatingAdmissionPolicy", "jhub-occam-occam-student-pods"),
        ("ValidatingAdmissionPolicy", "jhub-occam-occam-student-services"),
        ("ValidatingAdmissionPolicyBinding", "jhub-occam-occam-student-pods"),
        ("ValidatingAdmissionPolicyBinding", "jhub-occam-occam-student-services"),
    ]
    for item in items:
        assert item["apiVersion"] == "admissionregistration.k8s.io/v1"
    for policy in items[:2]:
        assert policy["spec"]["failurePolicy"] == "Fail"
        assert policy["spec"]["matchConstraints"]["namespaceSelector"] == NAMESPACE_SELECTOR
    for bound, policy in zip(items[2:], items[:2], strict=True):
        assert bound["spec"]["policyName"] == policy["metadata"]["name"]
        assert bound["spec"]["validationActions"] == ["Deny"]
        assert bound["spec"]["matchResources"]["namespaceSelector"] == NAMESPACE_SELECTOR
    assert NAMESPACE_SELECTOR == {"matchLabels": {"app.kubernetes.io/managed-by": "occam-spawner"}}


def test_pods_are_checked_at_creation_only():
    # The scheduler binds through pods/binding; an UPDATE of a placed pod (the garbage collector's) must pass.
    (rule,) = pods_policy()["spec"]["matchConstraints"]["resourceRules"]
    assert rule["operations"] == ["CREATE"] and rule["resources"] == ["pods"]
    (rule,) = services_policy()["spec"]["matchConstraints"]["resourceRules"]
    assert rule["operations"] == ["CREATE", "UPDATE"] and rule["resources"] == ["services"]


def test_no_priority_class_unless_allowed():
    assert "object.spec.priorityClassName == ''" in _expressions(pods_policy())[1]
    allowed = _expressions(pods_policy(["student-batch", "low.priority"]))[1]
    assert allowed.endswith("object.spec.priorityClassName in ['student-batch', 'low.priority']")


@pytest.mark.parametrize("name", ["High", "a'b", "", "x" * 254, "-a"])
def test_priority_class_names_that_could_break_the_expression_are_refused(name):
    with pytest.raises(ValueError, match="not a PriorityClass name"):
        check_priority_classes([name])
    with pytest.raises(ValueError):
        pods_policy([name])


def test_services_must_be_cluster_ip_without_external_ips():
    assert _expressions(services_policy()) == [
        "!has(object.spec.type) || object.spec.type == 'ClusterIP'",
        "!has(object.spec.externalIPs) || size(object.spec.externalIPs) == 0",
    ]


def test_builders_return_fresh_objects():
    policy = pods_policy()
    policy["spec"]["matchConstraints"]["namespaceSelector"]["matchLabels"]["x"] = "y"
    binding(policy)["spec"]["matchResources"]["namespaceSelector"]["matchLabels"]["z"] = "w"
    assert NAMESPACE_SELECTOR == {"matchLabels": {"app.kubernetes.io/managed-by": "occam-spawner"}}
    assert pods_policy() != policy
