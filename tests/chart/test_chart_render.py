"""The occam chart through Helm, offline: strict lint, renders with several values files, the failure
messages of bad values, the schema, and what the rendered objects say.

Helm is real (helm-python-sdk, Helm 4 as a library). The Zero to JupyterHub dependency cannot be fetched
here: lint and renders see Occam's own templates, and the ``jupyterhub:`` values are checked against the
key paths recorded from Z2JH 4.4.0's schema (``z2jh-facts.json``), not against the chart itself.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from spawner.admission_policy import HUB_POLICY, admission_objects, hub_binding, hub_policy
from spawner.hub_rbac import hub_namespace_cluster_role, hub_rules, notebook_cluster_role, pull_secret_reader_rules

from . import z2jh_facts
from .rendering import (
    ADMIN_DEFAULTS,
    API_SERVER_CIDRS,
    CHART,
    KUBE_VERSION,
    NAMESPACE,
    RELEASE,
    VALUES_DIR,
    by_kind,
    copy_without_dependency,
    expected_error,
    objects,
    render,
    values_file,
)

helm = pytest.importorskip("helm_python", reason="the chart tier needs helm-python-sdk (the dev extra)")

GOOD = ["minimal.yaml", "gpu-course.yaml", "shared-volume.yaml", "shared-work-per-student.yaml"]
BAD = sorted(p.name for p in (Path(__file__).with_name("values")).glob("bad-*.yaml"))


def _hub_values(items: list[dict[str, Any]]) -> dict[str, Any]:
    (config_map,) = by_kind(items, "ConfigMap")
    loaded: dict[str, Any] = json.loads(config_map["data"]["occam-values.json"])
    return loaded


def test_lint_is_clean_but_for_the_dependency_that_cannot_be_fetched_here(tmp_path: Path) -> None:
    report = helm.lint(CHART, strict=True, kube_version=KUBE_VERSION)
    assert report["errors"] == ["chart directory is missing these dependencies: jupyterhub"], report
    copy = copy_without_dependency(tmp_path)
    for name in [None, *GOOD]:
        report = helm.lint(copy, values_file(name) if name else None, strict=True, kube_version=KUBE_VERSION)
        assert report["errors"] == [], (name, report)
        assert [m for m in report["messages"] if m["severity"] >= 2] == [], (name, report)


@pytest.mark.parametrize("name", GOOD)
def test_good_values_render_the_hub_config_and_rbac(name: str) -> None:
    items = objects(values_file(name))
    # Only with occam.imagePullSecrets: the Role that reads them by name in the hub's namespace, and its binding.
    pull_secrets = ["Role", "RoleBinding"] if values_file(name)["occam"].get("imagePullSecrets") else []
    assert sorted(item["kind"] for item in items) == [
        *["ClusterRole"] * 3,  # the hub's, the notebook's, the hub's in student namespaces
        "ClusterRoleBinding",
        "ConfigMap",
        "DaemonSet",  # the GPU image pre-puller
        *pull_secrets,
        *["ValidatingAdmissionPolicy"] * 3,  # student pods, student Services, the hub's scope
        *["ValidatingAdmissionPolicyBinding"] * 3,
    ]
    (config_map,) = by_kind(items, "ConfigMap")
    assert config_map["metadata"]["name"] == "occam-hub-config"
    assert config_map["data"]["occam_config.py"] == (CHART / "files" / "occam_config.py").read_text()
    values = _hub_values(items)
    assert values["hubNamespace"] == "jhub"
    assert values["hubSelector"] == {"app": "jupyterhub", "release": "occam"}


def test_the_hub_config_directory_is_mounted_where_z2jh_loads_extra_config() -> None:
    facts = z2jh_facts.load()["facts"]
    hub = yaml.safe_load((CHART / "values.yaml").read_text())["jupyterhub"]["hub"]
    (volume,) = hub["extraVolumes"]
    (mount,) = hub["extraVolumeMounts"]
    assert volume == {"name": "occam-hub-config", "configMap": {"name": "occam-hub-config"}}
    assert mount["name"] == volume["name"] and mount["readOnly"] is True
    assert mount["mountPath"] == facts["config_d"]["value"]
    # Z2JH writes extraVolumes untemplated: the ConfigMap's name must not depend on the release.
    assert facts["extra_volumes_untemplated"]["value"] is True
    for release in ("occam", "course-2027"):
        (config_map,) = by_kind(objects(release=release), "ConfigMap")
        assert config_map["metadata"]["name"] == volume["configMap"]["name"]


def test_course_limits_and_profiles_reach_the_hub_config() -> None:
    values = _hub_values(objects(values_file("gpu-course.yaml")))
    assert values["course"] == {
        "maxExecutors": 4,
        "cpu": "16",
        "memory": "64Gi",
        "executorMaxCpu": "4",
        "executorMaxMemory": "16Gi",
        "executorIdleMinutes": 20,
        "maxGpusInUse": 8,
        # the chart's defaults for what the values file leaves out
        "ephemeralStorage": "20Gi",
        "executorMaxEphemeralStorage": "4Gi",
        "storage": "20Gi",
        "secrets": 20,
        "configmaps": 20,
        "services": 10,
        "persistentVolumeClaims": 4,
    }
    assert [p["slug"] for p in values["profiles"]] == ["cpu", "gpu-large", "cpu-shared-gpu"]
    assert values["imagePullSecrets"] == ["registry-credentials"]
    assert (values["profiles"][1]["gpus"], values["profiles"][1]["gpuQuota"]) == (1, 4)
    assert values["spawner"] == {
        "namespacePrefix": "ml-",
        "namespacePrepareTimeout": 120,
        "checkNodeFit": False,
        "podSecurityLevel": "restricted",
        "clusterDomain": "cluster.local",
    }


def _rule_set(rules: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted(
        (r["apiGroups"], r["resources"], sorted(r["verbs"]), sorted(r.get("resourceNames", []))) for r in rules
    )


def test_the_cluster_roles_are_exactly_what_the_spawner_needs() -> None:
    roles = {r["metadata"]["name"]: r for r in by_kind(objects(), "ClusterRole")}
    hub, notebook, in_namespace = (f"occam-{kind}-{NAMESPACE}-{RELEASE}" for kind in ("hub", "notebook", "hub-ns"))
    assert set(roles) == {hub, notebook, in_namespace}
    wanted = hub_rules(notebook, in_namespace)
    assert _rule_set(roles[hub]["rules"]) == _rule_set(wanted), (
        "templates/hub-rbac.yaml must hold spawner.hub_rbac.hub_rules(); they are now:\n"
        + yaml.safe_dump(wanted, default_flow_style=None, sort_keys=False)
    )
    assert _rule_set(roles[notebook]["rules"]) == _rule_set(notebook_cluster_role()["rules"])
    assert _rule_set(roles[in_namespace]["rules"]) == _rule_set(hub_namespace_cluster_role()["rules"])
    for role in roles.values():
        for rule in role["rules"]:
            assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"], rule
            assert "nonResourceURLs" not in rule
            assert "resourceNames" not in rule or rule["verbs"] == ["bind"]
    (binding,) = by_kind(objects(), "ClusterRoleBinding")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": hub}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "occam-hub", "namespace": "jhub"}]
    (config_map,) = by_kind(objects(), "ConfigMap")
    values = json.loads(config_map["data"]["occam-values.json"])
    assert (values["notebookClusterRole"], values["hubNamespaceRole"]) == (notebook, in_namespace)


def test_the_hub_s_scope_policy_is_what_the_builder_makes() -> None:
    items = objects()
    name = f"{RELEASE}-{NAMESPACE}-{HUB_POLICY}"
    (policy,) = [i for i in by_kind(items, "ValidatingAdmissionPolicy") if i["metadata"]["name"] == name]
    (made,) = [i for i in by_kind(items, "ValidatingAdmissionPolicyBinding") if i["metadata"]["name"] == name]
    want = hub_policy(f"system:serviceaccount:{NAMESPACE}:occam-hub", name=name)
    assert policy["spec"] == want["spec"]
    assert made["spec"] == hub_binding(want)["spec"]


def test_two_releases_get_distinct_cluster_scoped_names() -> None:
    names = {
        (release, namespace): by_kind(objects(release=release, namespace=namespace), "ClusterRole")[0]["metadata"][
            "name"
        ]
        for release, namespace in [("occam", "course-a"), ("occam", "course-b"), ("other", "course-a")]
    }
    assert len(set(names.values())) == 3, names


@pytest.mark.parametrize("name", BAD)
def test_bad_values_fail_with_a_message_naming_the_fix(name: str) -> None:
    with pytest.raises(helm.HelmError) as caught:
        render(values_file(name))
    assert isinstance(caught.value, helm.HelmValuesError | helm.HelmRenderError)
    assert re.search(expected_error(name), str(caught.value)), str(caught.value)


@pytest.mark.parametrize(
    "values",
    [
        {"occam": {"surprise": 1}},
        {
            "occam": {
                "profiles": [
                    {
                        "slug": "x",
                        "displayName": "X",
                        "image": "notebook",
                        "notebook": {"cpu": 1, "memory": "1Gi"},
                        "gpu": 1,
                    }
                ]
            }
        },
        {"occam": {"sharedData": {"enabled": True, "volume": {"hostPath": {"path": "/data"}}}}},
        {
            "occam": {
                "sharedWork": {"enabled": True, "mountPath": "work", "volume": {"nfs": {"server": "s", "path": "/"}}}
            }
        },
        {"occam": {"images": {"notebook": {"name": "x", "tag": "1", "digest": "sha256:0"}}}},
        {"occam": {"course": {"cpu": "eight"}}},
        {"occam": {"spawner": {"namespacePrefix": "Occam_"}}},
        {"jupyterhubb": {}},
    ],
    ids=["top", "profile", "volume-kind", "work-path", "image", "quantity", "prefix", "root"],
)
def test_the_schema_rejects_unknown_keys_and_malformed_values(values: dict[str, Any]) -> None:
    with helm.Chart.load(CHART) as chart, pytest.raises(helm.HelmValuesError):
        chart.validate_schema(chart.merge_values(values))


def test_the_jupyterhub_values_use_keys_of_the_pinned_z2jh_schema() -> None:
    facts = z2jh_facts.load()
    dependency = yaml.safe_load((CHART / "Chart.yaml").read_text())["dependencies"][0]
    assert (dependency["name"], dependency["version"]) == (
        "jupyterhub",
        facts["release"],
    ), "the pinned Z2JH release changed: refresh tests/chart/z2jh-facts.json (see tests/chart/z2jh_facts.py)"
    assert dependency["condition"] == f"jupyterhub.{facts['facts']['enabled_key']['value']}"

    def paths(tree: dict[str, Any], prefix: str = "") -> list[str]:
        found = []
        for key, value in tree.items():
            path = f"{prefix}{key}"
            found.append(path)
            if isinstance(value, dict) and not z2jh_facts.known(f"{path}.*", facts):
                found.extend(paths(value, f"{path}."))
        return found

    sources = {"values.yaml": yaml.safe_load((CHART / "values.yaml").read_text())}
    sources.update({name: values_file(name) for name in GOOD})
    for source, values in sources.items():
        unknown = [p for p in paths(values.get("jupyterhub") or {}) if not z2jh_facts.known(p, facts)]
        assert unknown == [], f"{source} sets jupyterhub keys that Z2JH {facts['release']} does not have: {unknown}"
    assert not z2jh_facts.known("hub.imagee", facts)  # the check can fail


def test_image_tags_are_the_app_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    version = chart["appVersion"]
    images = values["occam"]["images"]
    assert images["notebook"]["tag"] == f"{version}-cpu"
    assert images["gpuNotebook"]["tag"] == f"{version}-gpu"
    assert values["jupyterhub"]["hub"]["image"]["tag"] == version
    assert values["jupyterhub"]["singleuser"]["image"] == images["notebook"]


def test_notes_say_what_to_do_next() -> None:
    notes = render(values_file("gpu-course.yaml"))["occam/templates/NOTES.txt"]
    assert "kubectl --namespace jhub get service proxy-public" in notes
    assert (
        "ml-<username>" in notes and "gpu-large: Four GPUs (notebook with 1 GPU(s), 4 GPUs per student in all)" in notes
    )
    off = render({"occam": ADMIN_DEFAULTS["occam"], "jupyterhub": {"enabled": False}})["occam/templates/NOTES.txt"]
    assert "only Occam's own objects were installed" in off


@pytest.mark.parametrize("allowed", [[], ["student-batch", "course.low"]])
def test_the_admission_policies_are_exactly_what_the_builders_make(allowed: list[str]) -> None:
    values = {
        **ADMIN_DEFAULTS,
        "occam": {**ADMIN_DEFAULTS["occam"], "admissionPolicy": {"enabled": True, "allowedPriorityClasses": allowed}},
    }
    items = objects(values)
    rendered = [
        i
        for i in [*by_kind(items, "ValidatingAdmissionPolicy"), *by_kind(items, "ValidatingAdmissionPolicyBinding")]
        if not i["metadata"]["name"].endswith(HUB_POLICY)
    ]
    wanted = admission_objects(allowed, prefix=f"{RELEASE}-{NAMESPACE}-")
    assert [(i["kind"], i["metadata"]["name"]) for i in rendered] == [
        (i["kind"], i["metadata"]["name"]) for i in wanted
    ]
    for got, want in zip(rendered, wanted, strict=True):
        assert got["spec"] == want["spec"], (
            "templates/admission-policy.yaml must render spawner.admission_policy's objects; they are now:\n"
            + yaml.safe_dump(want["spec"], sort_keys=False)
        )


def test_the_admission_policies_can_be_left_out_and_bad_class_names_are_refused() -> None:
    items = objects({**ADMIN_DEFAULTS, "occam": {**ADMIN_DEFAULTS["occam"], "admissionPolicy": {"enabled": False}}})
    assert not by_kind(items, "ValidatingAdmissionPolicy") and not by_kind(items, "ValidatingAdmissionPolicyBinding")
    with pytest.raises(Exception, match="allowedPriorityClasses"):
        objects(
            {
                **ADMIN_DEFAULTS,
                "occam": {
                    **ADMIN_DEFAULTS["occam"],
                    "admissionPolicy": {"allowedPriorityClasses": ["High'); true || ('"]},
                },
            }
        )


def test_the_chart_refuses_the_dummy_authenticator_unless_the_admin_says_so_loudly() -> None:
    """Z2JH's default lets anyone log in as anyone: a default install must name its authenticator."""
    import helm_python as helm

    with pytest.raises(helm.HelmRenderError, match="anyone who reaches the hub logs in as any student"):
        render({"occam": {"sharedWork": {"storageClass": "nfs-client"}}})
    notes = render({"occam": {**ADMIN_DEFAULTS["occam"], "insecureAllowAnyLogin": True}})["occam/templates/NOTES.txt"]
    assert "WARNING: occam.insecureAllowAnyLogin is true" in notes
    assert "WARNING" not in render()["occam/templates/NOTES.txt"]


def test_the_gpu_pre_puller_pulls_the_gpu_image_on_tolerated_gpu_nodes_only() -> None:
    (daemon_set,) = by_kind(objects(values_file("gpu-course.yaml")), "DaemonSet")
    pod = daemon_set["spec"]["template"]["spec"]
    assert [c["image"] for c in pod["initContainers"]] == ["registry.example.org/occam-notebook:0.1.0-gpu"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert pod["automountServiceAccountToken"] is False
    # it pulls, it does not hold a GPU
    assert all("nvidia.com/gpu" not in str(c.get("resources")) for c in pod["initContainers"] + pod["containers"])
    off = {**values_file("gpu-course.yaml")}
    off["occam"] = {**off["occam"], "gpuPrePuller": {"enabled": False}}
    assert by_kind(objects(off), "DaemonSet") == []


def test_a_default_install_renders_and_without_the_api_server_s_addresses_warns_that_its_ports_are_open() -> None:
    """``helm template`` cannot look the addresses up (no cluster): the hub gets none, and the spawner then opens
    the API server's ports on any address to the notebook and batch drivers (spawner.network_policy); NOTES says so.
    With the addresses set they reach the hub as they are, and NOTES is quiet."""
    bare = {"occam": {"sharedWork": ADMIN_DEFAULTS["occam"]["sharedWork"]}, "jupyterhub": ADMIN_DEFAULTS["jupyterhub"]}
    rendered = render(bare)
    assert _hub_values(objects(bare))["network"]["apiServerCIDRs"] == []
    notes = rendered["occam/templates/NOTES.txt"]
    assert "WARNING: occam.network.apiServerCIDRs is empty" in notes
    assert "ports 443\nand 6443 of ANY address" in notes
    assert _hub_values(objects(ADMIN_DEFAULTS))["network"]["apiServerCIDRs"] == API_SERVER_CIDRS
    assert "apiServerCIDRs" not in render()["occam/templates/NOTES.txt"]


def test_the_hub_reads_image_pull_secrets_by_name_in_its_own_namespace_only() -> None:
    items = objects(values_file("gpu-course.yaml"))
    (role,) = by_kind(items, "Role")
    (binding,) = by_kind(items, "RoleBinding")
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == NAMESPACE
    assert role["rules"] == pull_secret_reader_rules(["registry-credentials"])
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "occam-hub", "namespace": NAMESPACE}]
    assert by_kind(objects(values_file("minimal.yaml")), "Role") == []


def test_the_work_volumes_are_on_by_default_and_turning_them_off_is_said_explicitly() -> None:
    """A default install gives each student a work volume from the admin's StorageClass; off only when told."""
    work = _hub_values(objects(ADMIN_DEFAULTS))["sharedWork"]
    assert work["enabled"] is True and work["storageClass"] == "nfs-client" and work["volume"] == {}
    assert _hub_values(objects(values_file("work-off.yaml")))["sharedWork"]["enabled"] is False


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML that refuses a mapping with a key twice (PyYAML and Helm both keep the last one silently)."""


def _unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    keys = [loader.construct_object(key, deep=deep) for key, _ in node.value]
    repeated = sorted({str(k) for k in keys if keys.count(k) > 1})
    if repeated:
        raise yaml.constructor.ConstructorError(None, None, f"keys given twice: {repeated}", node.start_mark)
    return yaml.SafeLoader.construct_mapping(loader, node, deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


@pytest.mark.parametrize("path", [CHART / "values.yaml", *sorted(VALUES_DIR.glob("*.yaml"))], ids=lambda p: p.name)
def test_no_values_file_gives_a_key_twice(path: Path) -> None:
    # values.yaml once held jupyterhub.hub.networkPolicy twice: an edit of the first would have been ignored.
    yaml.load(path.read_text(), Loader=_UniqueKeyLoader)
    with pytest.raises(yaml.constructor.ConstructorError, match="keys given twice"):
        yaml.load("a:\n  b: 1\n  b: 2\n", Loader=_UniqueKeyLoader)
