"""The spawner's pure builders of a student's namespace: names, RBAC, quota, limits, network policy."""

from __future__ import annotations

import copy
import re

import pytest

from occam.errors import ConfigError
from occam.kubernetes.objects import USER_LABEL, parse_quantity
from spawner.hub_rbac import notebook_cluster_role
from spawner.limits import CourseLimits
from spawner.namespace import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    NOTEBOOK_RULES,
    POD_SECURITY_VERSION,
    SERVICE_ACCOUNT,
    USERNAME_ANNOTATION,
    adoption_problem,
    hub_role_binding,
    limit_range,
    namespace,
    namespace_name,
    namespace_objects,
    pod_security_labels,
    resource_quota,
    restricted_volume_problem,
    role_binding,
)
from tests.unit import factories

LIMITS = CourseLimits(max_executors=4, cpu="8", memory="16Gi", gpus=2, executor_max_cpu="2", executor_max_memory="4Gi")
HUB = {"hub_namespace": "jhub", "hub_selector": {"app.kubernetes.io/part-of": "jupyterhub"}}

USERNAMES = [
    "ada",
    "Ada",
    "ada.lovelace@unito.it",
    "ada_lovelace",
    "-ada-",
    "a--b",
    "ada-0123abcd",
    "0123abcd",
    "élodie",
    "李雷",
    "",
    "x" * 200,
    "UPPER-" + "y" * 80,
]


# --- namespace_name -----------------------------------------------------------------------------


@pytest.mark.parametrize("username", USERNAMES)
def test_namespace_names_are_dns_labels_with_the_prefix(username):
    name = namespace_name(username)
    assert factories.DNS_LABEL.fullmatch(name), name
    assert name.startswith("occam-")
    assert namespace_name(username) == name  # stable


def test_clean_usernames_are_kept_as_they_are():
    assert namespace_name("ada") == "occam-ada"
    assert namespace_name("ada-lovelace-42") == "occam-ada-lovelace-42"


def test_cleaned_usernames_get_a_hash_so_they_do_not_collide():
    names = {u: namespace_name(u) for u in ["ada", "Ada", "ADA", "ada.", "ada_", "-ada", "a-da", "a.da", "a_da"]}
    assert len(set(names.values())) == len(names), names
    # 16 hex digits: 64 bits, too many to search for a name whose hash matches another student's
    assert re.fullmatch(r"occam-ada-[0-9a-f]{16}", names["Ada"])
    assert re.fullmatch(r"occam-a-da-[0-9a-f]{16}", names["a.da"])


def test_a_username_cannot_pick_another_users_hashed_namespace():
    hashed = namespace_name("Ada")  # occam-ada-<hash>
    impostor = hashed.removeprefix("occam-")
    assert namespace_name(impostor) != hashed
    assert namespace_name(impostor).startswith(hashed + "-")


def test_long_usernames_are_cut_and_hashed_within_63_characters():
    a, b = namespace_name("x" * 100 + "a"), namespace_name("x" * 100 + "b")
    assert a != b
    assert len(a) == len(b) == 63


def test_usernames_with_nothing_usable_still_get_a_name():
    assert re.fullmatch(r"occam-[0-9a-f]{16}", namespace_name("李雷"))
    assert namespace_name("李雷") != namespace_name("韩梅梅")


# --- labels and apply order ---------------------------------------------------------------------


def test_namespace_objects_come_in_apply_order_all_labelled_and_in_the_namespace():
    objects = namespace_objects("Ada Lovelace", LIMITS, **HUB)
    kinds = [o["kind"] for o in objects]
    assert kinds == [
        "Namespace",
        "ServiceAccount",
        "RoleBinding",
        "ResourceQuota",
        "LimitRange",
        # default deny, DNS, the student's cluster, the notebook, its model services, the API server
        *["NetworkPolicy"] * 6,
    ]
    ns = namespace_name("Ada Lovelace")
    assert objects[0]["metadata"]["name"] == ns
    assert "namespace" not in objects[0]["metadata"]
    for obj in objects:
        labels = obj["metadata"]["labels"]
        assert labels[MANAGED_BY_LABEL] == MANAGED_BY
        assert labels[USER_LABEL] == "Ada-Lovelace"
        assert all(factories.LABEL_VALUE.fullmatch(v) for v in labels.values())
        assert factories.DNS_LABEL.fullmatch(obj["metadata"]["name"])
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == ns


def role(username: str) -> dict:
    """The notebook's rules as the spawner binds them in ``username``'s namespace (one ClusterRole for all)."""
    return notebook_cluster_role()


def test_builders_return_fresh_objects():
    first = role("ada")
    first["rules"][0]["verbs"].append("*")
    assert "*" not in role("ada")["rules"][0]["verbs"]
    assert "*" not in NOTEBOOK_RULES[0]["verbs"]


# --- RBAC ---------------------------------------------------------------------------------------

CLUSTER_SCOPED = {
    "nodes",
    "namespaces",
    "persistentvolumes",
    "clusterroles",
    "clusterrolebindings",
    "customresourcedefinitions",
    "storageclasses",
    "priorityclasses",
}


def _allowed(rules, resource, verb, group=""):
    return any(
        group in r["apiGroups"] and resource in r["resources"] and verb in r["verbs"] and not r.get("resourceNames")
        for r in rules
    )


def test_role_has_no_wildcards_and_nothing_cluster_scoped_or_escalating():
    obj = role("ada")
    assert obj["kind"] == "ClusterRole"  # bound per namespace only, never cluster-wide
    for rule in obj["rules"]:
        for key in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[key], rule
        assert not set(rule["resources"]) & CLUSTER_SCOPED, rule
        assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"]), rule
        assert "nonResourceURLs" not in rule
        assert not {"roles", "rolebindings", "serviceaccounts", "serviceaccounts/token"} & set(rule["resources"])
        # The core group, but for the one Deployment a model service is (occam.models.serve), or the Job a kept
        # one with an idle limit is.
        assert rule["apiGroups"] == [""] or rule in (
            {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["create", "get", "delete"]},
            {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create", "get", "delete"]},
        ), rule


@pytest.mark.parametrize(
    ("resource", "verb"),
    [
        # the Occam backend (occam/kubernetes/api.py)
        ("resourcequotas", "list"),
        ("limitranges", "list"),
        ("pods", "list"),
        ("events", "list"),
        ("secrets", "create"),
        ("pods", "deletecollection"),
        ("secrets", "deletecollection"),
        # Spark's executor allocator and lifecycle manager
        ("pods", "create"),
        ("pods", "get"),
        ("pods", "watch"),
        ("pods", "delete"),
        ("pods/log", "get"),
        ("configmaps", "create"),
        ("configmaps", "delete"),
        ("configmaps", "deletecollection"),
        ("persistentvolumeclaims", "create"),
        ("services", "create"),
    ],
)
def test_role_allows_what_start_cluster_does(resource, verb):
    assert _allowed(role("ada")["rules"], resource, verb)


@pytest.mark.parametrize(
    ("resource", "verb", "group"),
    [
        ("deployments", "create", "apps"),
        ("deployments", "get", "apps"),
        ("deployments", "delete", "apps"),
        ("services", "create", ""),
        ("services", "delete", ""),
        ("secrets", "create", ""),
        ("secrets", "delete", ""),
        ("pods", "list", ""),
        ("pods/log", "get", ""),
    ],
)
def test_role_allows_what_a_model_service_on_kubernetes_needs(resource, verb, group):
    assert _allowed(role("ada")["rules"], resource, verb, group)


@pytest.mark.parametrize(
    ("resource", "verb", "group"),
    [
        ("deployments", "list", "apps"),
        ("deployments", "update", "apps"),
        ("deployments", "patch", "apps"),
        ("deployments/scale", "update", "apps"),
        ("replicasets", "create", "apps"),
        ("statefulsets", "create", "apps"),
        ("daemonsets", "create", "apps"),
        ("jobs", "list", "batch"),
        ("jobs", "update", "batch"),
        ("jobs", "patch", "batch"),
        ("cronjobs", "create", "batch"),
        ("ingresses", "create", "networking.k8s.io"),
        ("networkpolicies", "delete", "networking.k8s.io"),
    ],
)
def test_role_refuses_other_workloads_and_changing_a_deployment(resource, verb, group):
    assert not _allowed(role("ada")["rules"], resource, verb, group)


@pytest.mark.parametrize(
    ("resource", "verb"),
    [
        ("pods", "update"),
        ("pods", "patch"),
        ("pods/exec", "create"),
        ("secrets", "watch"),
        ("secrets", "update"),
        ("resourcequotas", "update"),
        ("limitranges", "delete"),
        ("events", "create"),
        ("serviceaccounts/token", "create"),
    ],
)
def test_role_refuses_what_start_cluster_does_not_need(resource, verb):
    assert not _allowed(role("ada")["rules"], resource, verb)


def test_role_binding_binds_the_notebook_cluster_role_to_the_notebook_account_in_the_namespace():
    binding = role_binding("ada")
    ns = namespace_name("ada")
    assert binding["kind"] == "RoleBinding" and binding["metadata"]["namespace"] == ns
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role("ada")["metadata"]["name"],
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": ns}]
    assert (
        role_binding("ada", cluster_role="occam-notebook-jhub-occam")["roleRef"]["name"] == "occam-notebook-jhub-occam"
    )


def test_the_hub_is_bound_to_its_in_namespace_role_in_the_student_s_namespace_only():
    hub = "system:serviceaccount:jhub:occam-hub"
    binding = hub_role_binding("ada", hub, cluster_role="occam-hub-ns-jhub-occam")
    assert binding["metadata"]["namespace"] == namespace_name("ada")
    assert binding["roleRef"]["kind"] == "ClusterRole" and binding["roleRef"]["name"] == "occam-hub-ns-jhub-occam"
    assert binding["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": hub}]
    kinds = [o["kind"] for o in namespace_objects("ada", LIMITS, **HUB, hub_user=hub)]
    assert kinds.count("RoleBinding") == 2
    assert [o["kind"] for o in namespace_objects("ada", LIMITS, **HUB)].count("RoleBinding") == 1


# --- quota and limits ---------------------------------------------------------------------------


def test_quota_allows_the_executors_plus_the_notebook_and_the_course_totals():
    hard = resource_quota("ada", LIMITS)["spec"]["hard"]
    assert hard == {
        "pods": "5",
        "requests.cpu": "8",
        "requests.memory": "16Gi",
        "limits.cpu": "8",
        "limits.memory": "16Gi",
        "requests.nvidia.com/gpu": "2",
        "requests.ephemeral-storage": "20Gi",
        "limits.ephemeral-storage": "20Gi",
        "requests.storage": "20Gi",
        "persistentvolumeclaims": "4",
        "secrets": "20",
        "configmaps": "20",
        "services": "10",
        "services.nodeports": "0",
        "services.loadbalancers": "0",
    }
    assert "scopes" not in resource_quota("ada", LIMITS)["spec"]  # counts executors (see occam.kubernetes.quota)


def test_quota_without_gpus_allows_none_and_names_another_vendor():
    limits = CourseLimits(
        max_executors=1, cpu="2", memory="4Gi", gpus=0, executor_max_cpu="1", executor_max_memory="2Gi"
    )
    hard = resource_quota("ada", limits, gpu_resource="amd.com/gpu")["spec"]["hard"]
    assert hard["pods"] == "2"
    assert hard["requests.amd.com/gpu"] == "0"
    assert "requests.nvidia.com/gpu" not in hard


def test_limit_range_caps_each_container_with_defaults_under_the_cap():
    (item,) = limit_range("ada", LIMITS)["spec"]["limits"]
    assert item["type"] == "Container"
    assert item["max"] == {"cpu": "2", "memory": "4Gi", "ephemeral-storage": "4Gi"}
    assert item["default"] == item["defaultRequest"] == {"cpu": "1", "memory": "1Gi", "ephemeral-storage": "4Gi"}
    small = CourseLimits(
        max_executors=2,
        cpu="2",
        memory="2Gi",
        executor_max_cpu="500m",
        executor_max_memory="512Mi",
        ephemeral_storage="3Gi",
        executor_max_ephemeral_storage="2Gi",
    )
    (item,) = limit_range("ada", small)["spec"]["limits"]
    # the storage default is an equal share of the namespace's among its 3 pods, under the 2Gi cap
    assert item["default"] == {"cpu": "500m", "memory": "512Mi", "ephemeral-storage": "1024Mi"}
    for key in ("cpu", "memory", "ephemeral-storage"):
        assert parse_quantity(item["defaultRequest"][key]) <= parse_quantity(item["max"][key])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_executors": 0}, "at least 1"),
        ({"max_executors": True}, "whole number"),
        ({"max_executors": 2.5}, "whole number"),
        ({"gpus": -1}, "0 \\(no GPUs\\) or more"),
        ({"cpu": "eight"}, "cpu='eight' is not a Kubernetes quantity"),
        ({"memory": 16}, "must be a Kubernetes quantity string"),
        ({"memory": "0"}, "more than zero"),
        ({"executor_max_cpu": "16"}, "executor_max_cpu='16' is more than the namespace's whole cpu='8'.*lower"),
        ({"executor_max_memory": "32Gi"}, "executor_max_memory='32Gi' is more than"),
        ({"executor_max_ephemeral_storage": "64Gi"}, "executor_max_ephemeral_storage='64Gi' is more than"),
        ({"ephemeral_storage": "0"}, "ephemeral_storage='0' must be more than zero"),
        ({"storage": "lots"}, "storage='lots' is not a Kubernetes quantity"),
        ({"secrets": -1}, "secrets=-1 must be 0"),
        ({"services": "3"}, "services='3' must be a whole number"),
        ({"configmaps": 0}, "kube-root-ca.crt"),
    ],
)
def test_course_limits_refuse_impossible_values_saying_what_to_write(kwargs, message):
    values = {"max_executors": 4, "cpu": "8", "memory": "16Gi", "executor_max_cpu": "2", "executor_max_memory": "4Gi"}
    with pytest.raises(ConfigError, match=message):
        CourseLimits(**{**values, **kwargs})


def test_course_limits_are_frozen():
    with pytest.raises(AttributeError):
        LIMITS.cpu = "100"  # type: ignore[misc]


def test_a_namespace_prefix_names_every_object_s_namespace():
    objects = namespace_objects(
        "Ada", LIMITS, hub_namespace="jhub", hub_selector={"app": "jupyterhub"}, prefix="ml101-"
    )
    name = namespace_name("Ada", prefix="ml101-")
    assert name.startswith("ml101-ada-")
    assert factories.DNS_LABEL.match(name)
    assert objects[0]["metadata"]["name"] == name
    assert {obj["metadata"]["namespace"] for obj in objects[1:]} == {name}
    assert namespace_name("ada", prefix="ml101-") == "ml101-ada"
    assert namespace_name("ada") == "occam-ada"


def test_a_long_prefix_still_gives_a_dns_label():
    prefix = "a" * 29 + "-"
    name = namespace_name("x" * 80, prefix=prefix)
    assert factories.DNS_LABEL.match(name)
    assert name.startswith(prefix)


@pytest.mark.parametrize("prefix", ["", "Occam-", "-occam", "occam_", "1occam-", "a" * 31])
def test_a_bad_prefix_is_refused(prefix):
    with pytest.raises(ValueError, match="namespace prefix"):
        namespace_name("ada", prefix=prefix)


def test_a_limit_of_no_claim_storage_is_allowed():
    assert (
        resource_quota("ada", CourseLimits(max_executors=1, cpu="2", memory="4Gi", storage="0"))["spec"]["hard"][
            "requests.storage"
        ]
        == "0"
    )


# --- the namespace: Pod Security and the username ------------------------------------------------


def test_the_namespace_enforces_the_restricted_pod_security_standard_pinned_and_warns_at_latest():
    labels = namespace("Ada.Lovelace")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert labels["pod-security.kubernetes.io/enforce-version"] == POD_SECURITY_VERSION == "v1.34"
    for mode in ("warn", "audit"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"
        assert labels[f"pod-security.kubernetes.io/{mode}-version"] == "latest"
    assert labels == {**pod_security_labels(), MANAGED_BY_LABEL: MANAGED_BY, USER_LABEL: "Ada.Lovelace"}


def test_the_namespace_holds_the_exact_username():
    for username in ("Ada.Lovelace", "李雷", "x" * 200):
        assert namespace(username)["metadata"]["annotations"] == {USERNAME_ANNOTATION: username}


def test_only_the_student_s_own_occam_namespace_may_be_taken_over():
    desired = namespace("Ada")
    own = copy.deepcopy(desired)
    assert adoption_problem(own, desired) is None
    other = namespace("ADA")  # a different user; (not) the same namespace name, but say it were
    assert "belongs to user 'ADA'" in (adoption_problem(other, desired) or "")
    foreign = {"metadata": {"name": desired["metadata"]["name"], "labels": {"team": "x"}}}
    assert "Occam did not make it" in (adoption_problem(foreign, desired) or "")
    legacy = {"metadata": {"name": "n", "labels": {MANAGED_BY_LABEL: MANAGED_BY, USER_LABEL: "Ada"}}}
    assert adoption_problem(legacy, desired) is None
    legacy["metadata"]["labels"][USER_LABEL] = "Bob"
    assert "not for user 'Ada'" in (adoption_problem(legacy, desired) or "")


def test_a_course_may_enforce_baseline_but_never_privileged_and_always_warns_restricted():
    labels = namespace("ada", pod_security_level="baseline")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "baseline"
    assert labels["pod-security.kubernetes.io/warn"] == labels["pod-security.kubernetes.io/audit"] == "restricted"
    with pytest.raises(ValueError, match="never allow privileged pods"):
        namespace("ada", pod_security_level="privileged")


def test_volumes_restricted_refuses_are_named_with_the_fix():
    assert restricted_volume_problem({"persistentVolumeClaim": {"claimName": "w"}}, "restricted") is None
    assert restricted_volume_problem({"csi": {"driver": "nfs.csi.k8s.io"}}, "restricted") is None
    assert restricted_volume_problem({"nfs": {"server": "s", "path": "/"}}, "baseline") is None
    problem = restricted_volume_problem({"nfs": {"server": "s", "path": "/"}}, "restricted")
    assert problem is not None and "nfs volume" in problem and 'pod_security_level = "baseline"' in problem


def test_image_pull_secrets_are_copied_and_named_by_the_notebook_account() -> None:
    from spawner.namespace import HUB_BINDING, HUB_BOUND_KINDS, namespace_objects, pull_secret_copy

    source = {
        "metadata": {
            "name": "registry",
            "namespace": "jhub",
            "uid": "u1",
            "resourceVersion": "7",
            "labels": {"x": "y"},
        },
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": "e30="},
    }
    copy = pull_secret_copy("ada", source)
    assert copy == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "registry",
            "namespace": "occam-ada",
            "labels": {"app.kubernetes.io/managed-by": "occam-spawner", "occam.io/user": "ada"},
        },
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": "e30="},
    }
    objects = namespace_objects(
        "ada",
        CourseLimits(max_executors=1, cpu="4", memory="8Gi"),
        hub_namespace="jhub",
        hub_selector={"app": "jupyterhub"},
        hub_user="system:serviceaccount:jhub:hub",
        pull_secrets=[source],
    )
    kinds = [o["kind"] for o in objects]
    # The hub may make the copy only through its RoleBinding in the namespace (spawner.hub_rbac), so the copy
    # comes after it; the account may name a Secret that does not exist yet (pods wait for it).
    hub_binding = next(i for i, o in enumerate(objects) if o["metadata"]["name"] == HUB_BINDING)
    assert kinds.index("Secret") > hub_binding
    assert "Secret" in HUB_BOUND_KINDS
    (account,) = [o for o in objects if o["kind"] == "ServiceAccount"]
    assert account["imagePullSecrets"] == [{"name": "registry"}]
    plain = namespace_objects(
        "ada",
        CourseLimits(max_executors=1, cpu="4", memory="8Gi"),
        hub_namespace="jhub",
        hub_selector={"app": "jupyterhub"},
    )
    assert "imagePullSecrets" not in next(o for o in plain if o["kind"] == "ServiceAccount")


def test_only_registry_credentials_are_copied_to_students() -> None:
    from spawner.namespace import pull_secret_copy

    with pytest.raises(ValueError, match="not an image pull secret"):
        pull_secret_copy("ada", {"metadata": {"name": "hub"}, "type": "Opaque", "data": {"token": "c2VjcmV0"}})
