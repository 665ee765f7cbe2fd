"""The chart's course catalog objects against a real API server (the session's control plane, ``kube``).

Every catalog object passes a server-side dry run, and the writer-node policy, created for real, refuses a pod
in a student namespace that tolerates the catalog writer's taint (or every taint), while the pods Occam makes
(a GPU toleration, none at all) are admitted. kwok runs no container; what is checked is what the API server
admits.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from ..kubernetes.fixtures import Kube
from ..kubernetes.student import restricted_pod_spec, wait_until
from .rendering import objects, values_file

pytest.importorskip("helm_python", reason="the chart tier needs helm-python-sdk (the dev extra)")

WRITER_TAINT = "occam.io/catalog-writer"


@pytest.fixture
def namespaces(kube: Kube) -> Iterator[tuple[str, str]]:
    """The release's namespace and a student namespace labelled as the spawner labels them; deleted afterwards."""
    from kubernetes import client

    core = client.CoreV1Api(kube.admin)
    suffix = uuid.uuid4().hex[:8]
    release, student = f"occam-chart-{suffix}", f"occam-student-{suffix}"
    core.create_namespace({"metadata": {"name": release}})
    core.create_namespace({"metadata": {"name": student, "labels": {"app.kubernetes.io/managed-by": "occam-spawner"}}})
    yield release, student
    for name in (release, student):
        core.delete_namespace(name)


def _pod(tolerations: list[dict[str, Any]]) -> dict[str, Any]:
    container = {"name": "c", "image": "registry.k8s.io/pause:3.10"}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"p-{uuid.uuid4().hex[:6]}"},
        "spec": restricted_pod_spec(container, tolerations=tolerations),
    }


def test_the_catalog_objects_are_admitted_and_no_student_pod_may_tolerate_the_writer_taint(
    kube: Kube, namespaces: tuple[str, str]
) -> None:
    from kubernetes import client, utils

    release, student = namespaces
    items = [
        item
        for item in objects(values_file("catalog.yaml"), namespace=release)
        if "catalog" in item["metadata"]["name"]
    ]
    assert sorted(item["kind"] for item in items) == [
        "Deployment",
        "NetworkPolicy",
        "Service",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ]
    for item in items:
        utils.create_from_dict(kube.admin, item, namespace=release, dry_run="All")
    admission = client.AdmissionregistrationV1Api(kube.admin)
    policy = next(i for i in items if i["kind"] == "ValidatingAdmissionPolicy")
    binding = next(i for i in items if i["kind"] == "ValidatingAdmissionPolicyBinding")
    admission.create_validating_admission_policy(policy)
    admission.create_validating_admission_policy_binding(binding)
    core = client.CoreV1Api(kube.admin)
    try:
        writer = [{"key": WRITER_TAINT, "operator": "Exists", "effect": "NoSchedule"}]

        def refused() -> str | None:
            try:
                core.create_namespaced_pod(student, _pod(writer), dry_run="All")
            except client.ApiException as exc:
                return str(exc.body) if exc.status == 403 else None
            return None

        message = wait_until("the writer-node policy to take effect", refused, timeout=60)
        assert "catalog writer's taint" in message
        with pytest.raises(client.ApiException) as every_taint:
            core.create_namespaced_pod(student, _pod([{"operator": "Exists"}]), dry_run="All")
        assert every_taint.value.status == 403
        # what Occam's pods carry is admitted: a GPU toleration, or none
        core.create_namespaced_pod(
            student, _pod([{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]), dry_run="All"
        )
        core.create_namespaced_pod(student, _pod([]), dry_run="All")
        # ... and outside student namespaces nothing changes: the catalog's own pod tolerates it
        core.create_namespaced_pod(release, _pod(writer), dry_run="All")
    finally:
        admission.delete_validating_admission_policy_binding(binding["metadata"]["name"])
        admission.delete_validating_admission_policy(policy["metadata"]["name"])
