"""Each student's own work volume, provisioned for real on the real node and tried from real pods.

Two students' namespaces are made as OccamSpawner makes them: :func:`spawner.namespace.namespace_objects` plus
the work claim of :func:`spawner.work_volume.work_claim` from a ReadWriteMany StorageClass, applied by
:func:`spawner.apply.prepare_namespace`. The class is served by a real dynamic provisioner
(:class:`.provisioner.VolumeProvisioner`, a directory of this machine per volume). Everything after that is done
with each student's own credentials (the notebook ServiceAccount's token, as in the notebook pod): restricted pods
in each namespace write and read their own volume; the two volumes are distinct; and the ways one student might
reach the other's volume are refused by the cluster itself (the API server's schema, the PV controller, the
scheduler, the storage quota), which the tally at the end counts.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from spawner.apply import prepare_namespace
from spawner.limits import CourseLimits
from spawner.namespace import SERVICE_ACCOUNT, labels, namespace_name, namespace_objects
from spawner.work_volume import WORK_CLAIM, work_claim, work_volume_source
from tests.kubernetes.fixtures import Kube
from tests.kubernetes.pki import write_kubeconfig
from tests.kubernetes.student import Tally, delete_namespaces, report_tally, restricted_pod_spec, wait_until

from .nodeconfig import API_SERVICE_IP
from .provisioner import VolumeProvisioner
from .realnode import RealNode

#: The namespace's claims may request 2Gi in all: the 1Gi work claim leaves room for one more of 1Gi, not 1.5Gi.
LIMITS = CourseLimits(max_executors=2, cpu="2", memory="4Gi", storage="2Gi")
WORK_SIZE = "1Gi"
MOUNT = "/home/jovyan/occam-work"
TALLY = Tally()


@dataclass(frozen=True)
class Student:
    """One student's namespace, their clients with the notebook's token, and their work volume."""

    who: str
    namespace: str
    core: Any  # CoreV1Api with the notebook account's token
    volume: str  # the PersistentVolume bound to their work claim


def _token_client(kube: Kube, namespace: str, directory: Path) -> Any:
    from kubernetes import client, config

    core = client.CoreV1Api(kube.admin)
    token = core.create_namespaced_service_account_token(
        SERVICE_ACCOUNT, namespace, {"spec": {"expirationSeconds": 3600}}
    ).status.token
    configuration = kube.admin.configuration
    ca_pem = Path(configuration.ssl_ca_cert).read_bytes() if configuration.ssl_ca_cert else None
    path = write_kubeconfig(directory / f"{namespace}.kubeconfig", configuration.host, ca_pem, {"token": token})
    return config.new_client_from_config(str(path))


@pytest.fixture(scope="module")
def students(
    real_node: RealNode,
    volume_provisioner: VolumeProvisioner,
    kube: Kube,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[dict[str, Student]]:
    """Ada's and Bob's namespaces as the spawner makes them, each work claim Bound; all removed after."""
    from kubernetes import client

    core = client.CoreV1Api(kube.admin)
    tag = uuid.uuid4().hex[:6]
    users = {"ada": f"workvol-ada-{tag}", "bob": f"workvol-bob-{tag}"}
    directory = tmp_path_factory.mktemp("workvol")
    api_clients = []
    try:
        found = {}
        for who, user in users.items():
            ns = namespace_name(user)
            objects = namespace_objects(
                user, LIMITS, hub_namespace="jhub", hub_selector={"app": "jupyterhub"},
                api_server_cidrs=[f"{API_SERVICE_IP}/32"],
            )  # fmt: skip
            objects.append(work_claim(ns, labels(user), volume_provisioner.storage_class, WORK_SIZE))
            prepare_namespace(kube.admin, objects)

            def bound(ns: str = ns) -> str | None:
                claim = core.read_namespaced_persistent_volume_claim(WORK_CLAIM, ns)
                return str(claim.spec.volume_name) if claim.status.phase == "Bound" else None

            volume = wait_until(f"the work claim of {ns} to be bound", bound, timeout=60)
            api_clients.append(_token_client(kube, ns, directory))
            found[who] = Student(who, ns, client.CoreV1Api(api_clients[-1]), volume)
        with real_node.exclusive():
            yield found
    finally:
        for api_client in api_clients:
            api_client.close()
        namespaces = [namespace_name(u) for u in users.values()]
        delete_namespaces(core, namespaces)
        report_tally(request, TALLY, "hostile student on the work volumes")


def _pod(name: str, image: str, script: str, volume: dict[str, Any]) -> dict[str, Any]:
    container = {
        "name": "work",
        "image": image,
        "imagePullPolicy": "Never",
        "command": ["sh", "-c", script],
        "volumeMounts": [{"name": "work", "mountPath": MOUNT}],
        "resources": {"limits": {"cpu": "100m", "memory": "64Mi"}, "requests": {"cpu": "50m", "memory": "64Mi"}},
    }
    spec = restricted_pod_spec(container, restartPolicy="Never", volumes=[{"name": "work", **volume}])
    return {"metadata": {"name": name}, "spec": spec}


def _image(node: RealNode) -> str:
    image = node.images["notebook"]
    return str(image.ref)


def run_in(student: Student, node: RealNode, name: str, script: str) -> str:
    """Run ``script`` in a restricted pod of ``student``'s namespace with their work volume; its output."""
    body = _pod(name, _image(node), script, work_volume_source())
    # Quota admission refuses pods until the quota controller has counted the new namespace once.
    wait_until(f"pod {student.namespace}/{name} to be admitted", lambda: student.core.create_namespaced_pod(
        student.namespace, body), timeout=60)  # fmt: skip

    def finished() -> str | None:
        phase = student.core.read_namespaced_pod(name, student.namespace).status.phase
        return phase if phase in ("Succeeded", "Failed") else None

    phase = wait_until(f"pod {student.namespace}/{name} to finish", finished, timeout=180)
    log = str(student.core.read_namespaced_pod_log(name, student.namespace))
    assert phase == "Succeeded", f"{name}: {phase}\n{log}"
    return log


def test_each_claim_is_bound_to_a_volume_of_its_own(students: dict[str, Student], kube: Kube) -> None:
    from kubernetes import client

    core = client.CoreV1Api(kube.admin)
    ada, bob = students["ada"], students["bob"]
    assert ada.volume != bob.volume
    for student in (ada, bob):
        pv = core.read_persistent_volume(student.volume)
        assert pv.spec.access_modes == ["ReadWriteMany"]
        assert (pv.spec.claim_ref.namespace, pv.spec.claim_ref.name) == (student.namespace, WORK_CLAIM)
        assert pv.spec.host_path is not None and Path(pv.spec.host_path.path).is_dir()
    paths = {core.read_persistent_volume(s.volume).spec.host_path.path for s in (ada, bob)}
    assert len(paths) == 2


def test_each_student_writes_and_reads_their_own_volume_and_sees_nothing_of_the_other_s(
    students: dict[str, Student], real_node: RealNode, kube: Kube
) -> None:
    from kubernetes import client

    ada, bob = students["ada"], students["bob"]
    assert run_in(ada, real_node, "write", f"echo ada > {MOUNT}/ada.txt && ls -A {MOUNT}").split() == ["ada.txt"]
    # Bob's volume is another directory: Ada's file is not there, and his own is the only one.
    listed = run_in(bob, real_node, "write", f"echo bob > {MOUNT}/bob.txt && ls -A {MOUNT}")
    assert listed.split() == ["bob.txt"]
    # A second pod of Ada's (as an executor beside the notebook) reads what the first wrote, and only that.
    assert run_in(ada, real_node, "read", f"ls -A {MOUNT} && cat {MOUNT}/ada.txt").split() == ["ada.txt", "ada"]
    # On the node, each file is in its own volume's directory.
    core = client.CoreV1Api(kube.admin)
    for student in (ada, bob):
        path = Path(core.read_persistent_volume(student.volume).spec.host_path.path)
        assert sorted(p.name for p in path.iterdir()) == [f"{student.who}.txt"]


def test_a_pod_cannot_name_another_namespace_s_claim(students: dict[str, Student], real_node: RealNode) -> None:
    """A pod's claim reference has no namespace: the API server refuses the field (strict validation). The body goes
    as it is (the Python client would refuse it before sending: its models have no such field either)."""
    ada, bob = students["ada"], students["bob"]
    TALLY.attempts.append("a pod naming another namespace's claim")
    volume = {"persistentVolumeClaim": {"claimName": WORK_CLAIM, "namespace": ada.namespace}}
    body = _pod("steal-by-namespace", _image(real_node), f"ls {MOUNT}", volume)
    api = bob.core.api_client
    request = api.param_serialize(
        "POST",
        "/api/v1/namespaces/{namespace}/pods",
        path_params={"namespace": bob.namespace},
        query_params=[("fieldValidation", "Strict")],
        header_params={"Content-Type": "application/json", "Accept": "application/json"},
        body=body,
        auth_settings=["BearerToken"],
    )
    response = api.call_api(*request)
    text = response.read().decode()
    assert response.status in (400, 422), f"{response.status}: {text}"
    assert "unknown field" in text and "persistentVolumeClaim.namespace" in text, text
    TALLY.refused.append("a pod naming another namespace's claim")


def test_a_pod_naming_the_other_student_s_volume_as_a_claim_never_starts(
    students: dict[str, Student], real_node: RealNode
) -> None:
    """Bob knows Ada's volume's name (PV names are not secret): as a claim name in his namespace it is not found,
    and the scheduler leaves the pod Pending."""
    ada, bob = students["ada"], students["bob"]
    TALLY.attempts.append("a pod naming another student's volume as its claim")
    volume = {"persistentVolumeClaim": {"claimName": ada.volume}}
    body = _pod("steal-by-volume", _image(real_node), f"ls {MOUNT}", volume)
    bob.core.create_namespaced_pod(bob.namespace, body)

    def unschedulable() -> str | None:
        events = bob.core.list_namespaced_event(
            bob.namespace, field_selector="involvedObject.name=steal-by-volume,reason=FailedScheduling"
        ).items
        return next((e.message for e in events if f'persistentvolumeclaim "{ada.volume}" not found' in e.message), None)

    wait_until("the scheduler to say the claim is not found", unschedulable, timeout=60)
    assert bob.core.read_namespaced_pod("steal-by-volume", bob.namespace).status.phase == "Pending"
    TALLY.refused.append("a pod naming another student's volume as its claim")


def test_a_claim_naming_the_other_student_s_volume_is_never_bound(
    students: dict[str, Student], volume_provisioner: VolumeProvisioner, kube: Kube
) -> None:
    """A claim may ask for a PersistentVolume by name (``volumeName``): Ada's is bound to her claim, so the PV
    controller leaves Bob's Pending, and the provisioner makes nothing for a claim that names a volume."""
    from kubernetes import client

    ada, bob = students["ada"], students["bob"]
    TALLY.attempts.append("a claim naming another student's volume")
    claim = {
        "metadata": {"name": "steal"},
        "spec": {
            "accessModes": ["ReadWriteMany"],
            "storageClassName": volume_provisioner.storage_class,
            "volumeName": ada.volume,
            "resources": {"requests": {"storage": WORK_SIZE}},
        },
    }
    bob.core.create_namespaced_persistent_volume_claim(bob.namespace, claim)

    def refused_by_the_pv_controller() -> str | None:
        events = bob.core.list_namespaced_event(bob.namespace, field_selector="involvedObject.name=steal").items
        return next((e.message for e in events if "already bound to a different claim" in e.message), None)

    wait_until("the PV controller to say the volume is bound to another claim", refused_by_the_pv_controller)
    time.sleep(2)  # and it stays so
    assert bob.core.read_namespaced_persistent_volume_claim("steal", bob.namespace).status.phase == "Pending"
    pv = client.CoreV1Api(kube.admin).read_persistent_volume(ada.volume)
    assert (pv.spec.claim_ref.namespace, pv.spec.claim_ref.name) == (ada.namespace, WORK_CLAIM)
    TALLY.refused.append("a claim naming another student's volume")
    bob.core.delete_namespaced_persistent_volume_claim("steal", bob.namespace)


def test_the_work_claim_counts_against_the_storage_quota(
    students: dict[str, Student], volume_provisioner: VolumeProvisioner
) -> None:
    """The quota allows 2Gi of claims: with the 1Gi work claim in place a claim of 1.5Gi is refused."""
    from kubernetes import client

    bob = students["bob"]
    TALLY.attempts.append("a claim beyond the namespace's storage quota")

    def claim(name: str, size: str) -> dict[str, Any]:
        return {
            "metadata": {"name": name},
            "spec": {
                "accessModes": ["ReadWriteMany"],
                "storageClassName": volume_provisioner.storage_class,
                "resources": {"requests": {"storage": size}},
            },
        }

    # No other claim of Bob's is left (the stolen-volume claim is deleted; wait until the quota says so).
    wait_until(
        "the quota to count the work claim alone",
        lambda: _used_storage(bob) == WORK_SIZE,
        timeout=60,
    )
    with pytest.raises(client.ApiException) as refused:
        bob.core.create_namespaced_persistent_volume_claim(bob.namespace, claim("more", "1536Mi"))
    assert refused.value.status == 403 and "exceeded quota" in refused.value.body, refused.value.body
    assert "requests.storage" in refused.value.body
    TALLY.refused.append("a claim beyond the namespace's storage quota")


def _used_storage(student: Student) -> str | None:
    quotas = student.core.list_namespaced_resource_quota(student.namespace).items
    used = [(q.status.used or {}).get("requests.storage") for q in quotas]
    return next((u for u in used if u), None)
