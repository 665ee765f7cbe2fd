"""occam.models.serve in a notebook pod, against a real API server: a Deployment, ClusterIP Service and
Secret made with the notebook's own service account (the Role the hub binds, spawner.namespace.NOTEBOOK_RULES),
counted by the namespace's quota, owned by the notebook pod unless kept, and gone after ``stop()``. A kept
service with an idle limit is a Job owning its Service and Secret, gone with the Job.

``serve`` runs in this process with ``OCCAM_K8S_*`` set as the spawner sets them and ``KUBECONFIG`` holding
the student's token, so RBAC, admission (Pod Security ``restricted``), the quota and the garbage collector
are the real ones. kwok's nodes report the service's pod Ready without running it (nothing answers HTTP
here: tests/node/test_model_service_on_node.py serves a real model on the real node). The model is a store
entry written without TensorFlow: only its metadata is read before the pod starts.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from occam.errors import ConfigError, ServiceStartError
from occam.models.metadata import ModelMetadata

from .student import wait_until
from .test_backend import EXECUTOR_IMAGE

SHARED_VOLUME = {
    "csi": {"driver": "nfs.csi.k8s.io", "volumeAttributes": {"server": "nfs.example.org", "share": "/ada"}}
}
NAME = "occam-serve-digits-v1"
SECRET_TOKEN = "a-token-of-the-test-0123456789"


@pytest.fixture
def student_notebook(
    monkeypatch: pytest.MonkeyPatch, kube: Any, namespace: Any, notebook: dict[str, Any], tmp_path: Path
) -> Path:
    """This process as the student's notebook kernel in pod ``jupyter-ada``; a model ada/digits:1 in the store
    on the shared work volume (its path here; kwok mounts nothing)."""
    shared = tmp_path / "work"
    version_dir = shared / "models" / "ada" / "digits" / "1"
    version_dir.mkdir(parents=True)
    metadata = ModelMetadata(name="digits", owner="ada", version=1, input_shape=[8, 8, 1], input_dtype="float32")
    (version_dir / "metadata.json").write_text(json.dumps(dataclasses.asdict(metadata)))
    (version_dir / "model.keras").write_bytes(b"not read before the pod starts")
    for key, value in {
        "KUBECONFIG": str(namespace.kubeconfig),
        "OCCAM_K8S_NAMESPACE": namespace.name,
        "OCCAM_K8S_POD_NAME": notebook["metadata"]["name"],
        "OCCAM_K8S_POD_UID": notebook["metadata"]["uid"],
        "OCCAM_K8S_POD_IP": "127.0.0.1",
        "OCCAM_K8S_EXECUTOR_IMAGE": EXECUTOR_IMAGE,
        "OCCAM_K8S_USER": "ada",
        "OCCAM_K8S_API_SERVER": kube.admin.configuration.host,
        "OCCAM_K8S_SHARED_VOLUME": json.dumps(SHARED_VOLUME),
        "OCCAM_K8S_SHARED_PATH": str(shared),
        "OCCAM_MODELS_DIR": str(shared / "models"),
        "JUPYTERHUB_USER": "ada",
        "JUPYTERHUB_SERVICE_PREFIX": "/user/ada/",
        "OCCAM_SERVE_CPU": "500m",
        "OCCAM_SERVE_MEMORY": "512Mi",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("OCCAM_BACKEND", raising=False)
    return shared


def _quota(admin: Any, namespace: str, cpu: str) -> None:
    admin.create_namespaced_resource_quota(
        namespace,
        {
            "metadata": {"name": "occam-quota"},
            "spec": {"hard": {"requests.cpu": cpu, "limits.cpu": cpu, "requests.memory": "4Gi", "pods": "10"}},
        },
    )


def _gone(read: Any, *args: Any) -> bool:
    from kubernetes.client.exceptions import ApiException

    try:
        read(*args)
    except ApiException as exc:
        return bool(exc.status == 404)
    return False


def _service_objects_gone(kube: Any, namespace: str) -> bool:
    from kubernetes import client

    core, apps, batch = client.CoreV1Api(kube.admin), client.AppsV1Api(kube.admin), client.BatchV1Api(kube.admin)
    return (
        _gone(apps.read_namespaced_deployment, NAME, namespace)
        and _gone(batch.read_namespaced_job, NAME, namespace)
        and _gone(core.read_namespaced_service, NAME, namespace)
        and _gone(core.read_namespaced_secret, NAME, namespace)
        and not core.list_namespaced_pod(namespace, label_selector=f"occam.io/model-service={NAME}").items
    )


def test_serve_makes_a_deployment_and_service_with_the_notebooks_rights_counted_by_the_quota(
    kube: Any, namespace: Any, admin: Any, notebook: dict[str, Any], student_notebook: Path
) -> None:
    from kubernetes import client

    from occam.models import serve
    from occam.models.serving_pod import PodModelService

    _quota(admin, namespace.name, "2")
    apps = client.AppsV1Api(kube.admin)
    with serve("digits", token=SECRET_TOKEN, timeout=60) as service:
        assert isinstance(service, PodModelService) and service.running
        assert service.url == f"http://{NAME}.{namespace.name}.svc:80/user/ada/proxy/absolute/{NAME}:80"
        assert service.proxy_url == f"/user/ada/proxy/absolute/{NAME}:80"
        assert service.link == f"/user/ada/proxy/absolute/{NAME}:80/api"
        assert service.predict_url.endswith("/v2/models/digits/predict/")

        deployment = admin.api_client.sanitize_for_serialization(apps.read_namespaced_deployment(NAME, namespace.name))
        owners = [(o["kind"], o["name"], o["uid"]) for o in deployment["metadata"]["ownerReferences"]]
        assert owners == [("Pod", "jupyter-ada", notebook["metadata"]["uid"])]
        pod_spec = deployment["spec"]["template"]["spec"]
        (container,) = pod_spec["containers"]
        assert container["image"] == EXECUTOR_IMAGE
        assert container["command"][container["command"].index("--model-dir") + 1] == str(
            student_notebook / "models" / "ada" / "digits" / "1"
        )
        assert SECRET_TOKEN not in json.dumps(deployment)  # the token is in the Secret only
        secret = admin.read_namespaced_secret(NAME, namespace.name)
        assert base64.b64decode(secret.data["token"]).decode() == SECRET_TOKEN
        assert secret.metadata.owner_references[0].uid == notebook["metadata"]["uid"]
        svc = admin.read_namespaced_service(NAME, namespace.name)
        assert svc.spec.type == "ClusterIP" and svc.spec.selector["occam.io/model-service"] == NAME
        assert svc.spec.ports[0].port == 80 and svc.spec.ports[0].target_port == 5000

        (pod,) = admin.list_namespaced_pod(namespace.name, label_selector=f"occam.io/model-service={NAME}").items
        assert pod.spec.automount_service_account_token is False
        # The quota counts the service's pod: what it requests is what it may use.
        wait_until(
            "the quota controller to count the model service's pod",
            lambda: admin.read_namespaced_resource_quota("occam-quota", namespace.name).status.used.get("requests.cpu")
            == "500m",
            timeout=60,
        )
        assert admin.read_namespaced_resource_quota("occam-quota", namespace.name).status.used["limits.cpu"] == "500m"
    # stop() (the context's exit) deleted everything and waited for the pod.
    assert _service_objects_gone(kube, namespace.name)
    assert not service.running


@pytest.mark.parametrize("kept", [False, True], ids=["deployment", "kept-job"])
def test_a_service_the_quota_cannot_hold_fails_at_once_naming_the_quota_and_leaves_nothing(
    kube: Any, namespace: Any, admin: Any, student_notebook: Path, monkeypatch: pytest.MonkeyPatch, kept: bool
) -> None:
    from occam.models import serve

    monkeypatch.setenv("OCCAM_SERVE_KEPT_IDLE_MINUTES", "2")
    _quota(admin, namespace.name, "250m")
    with pytest.raises(ServiceStartError, match="exceeded quota") as failure:
        serve("digits", keep=kept, timeout=60)
    assert "timed out" not in str(failure.value)
    assert _service_objects_gone(kube, namespace.name)


def test_a_service_goes_with_the_notebook_pod_unless_kept(
    kube: Any, namespace: Any, admin: Any, student_notebook: Path
) -> None:
    from kubernetes import client

    from occam.models import serve, stop_service

    apps = client.AppsV1Api(kube.admin)
    kept = serve("digits", keep=True, timeout=60)
    assert "ownerReferences" not in json.dumps(
        admin.api_client.sanitize_for_serialization(apps.read_namespaced_deployment(NAME, namespace.name))
    )
    with pytest.raises(ConfigError, match="already runs"):
        serve("digits", timeout=60)
    admin.delete_namespaced_pod("jupyter-ada", namespace.name)
    wait_until("the notebook pod to go", lambda: _gone(admin.read_namespaced_pod, "jupyter-ada", namespace.name))
    assert kept.running  # the garbage collector leaves it: no owner
    stop_service("digits:1")  # as a later notebook would
    assert _service_objects_gone(kube, namespace.name)


def test_a_kept_service_with_an_idle_limit_is_a_job_owning_its_service_and_secret(
    kube: Any, namespace: Any, admin: Any, student_notebook: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kwok's pods never exit, so the idle exit itself is tests/local/test_serving.py's; here: the objects, made
    with the notebook's rights, and that the Job's deletion (what ``ttlSecondsAfterFinished`` does once the
    service has exited) takes the Service, Secret and pod with it through the real garbage collector."""
    from kubernetes import client

    from occam.models import serve, stop_service

    monkeypatch.setenv("OCCAM_SERVE_KEPT_IDLE_MINUTES", "2")
    batch, apps = client.BatchV1Api(kube.admin), client.AppsV1Api(kube.admin)
    for ending in ("stop_service", "job deleted"):
        kept = serve("digits", keep=True, token=SECRET_TOKEN, timeout=60)
        assert kept.running
        assert _gone(apps.read_namespaced_deployment, NAME, namespace.name)  # a Job, not a Deployment
        job = admin.api_client.sanitize_for_serialization(batch.read_namespaced_job(NAME, namespace.name))
        assert "ownerReferences" not in job["metadata"]  # kept: not the notebook's
        assert job["spec"]["ttlSecondsAfterFinished"] > 0
        pod_spec = job["spec"]["template"]["spec"]
        assert pod_spec["restartPolicy"] == "OnFailure"
        command = pod_spec["containers"][0]["command"]
        assert command[command.index("--idle-exit") + 1] == "120"
        assert SECRET_TOKEN not in json.dumps(job)
        for owned in (
            admin.read_namespaced_secret(NAME, namespace.name),
            admin.read_namespaced_service(NAME, namespace.name),
        ):
            owners = [(o.kind, o.name, o.uid) for o in owned.metadata.owner_references]
            assert owners == [("Job", NAME, job["metadata"]["uid"])]
        with pytest.raises(ConfigError, match="already runs"):
            serve("digits", timeout=60)
        if ending == "stop_service":
            stop_service("digits:1")  # as a later notebook would: it finds the Job
            assert _service_objects_gone(kube, namespace.name)
        else:
            batch.delete_namespaced_job(NAME, namespace.name, propagation_policy="Background")
            wait_until(
                "the garbage collector to delete the kept service's Service, Secret and pod with its Job",
                lambda: _service_objects_gone(kube, namespace.name),
                timeout=90,
            )


def test_an_unkept_service_is_deleted_by_the_garbage_collector_with_the_notebook_pod(
    kube: Any, namespace: Any, admin: Any, student_notebook: Path
) -> None:
    from occam.models import serve

    service = serve("digits", timeout=60)
    admin.delete_namespaced_pod("jupyter-ada", namespace.name)
    wait_until(
        "the garbage collector to delete the model service with the notebook pod",
        lambda: _service_objects_gone(kube, namespace.name),
        timeout=90,
    )
    service.stop()  # nothing left to delete: still fine


def test_where_process_and_bad_arguments_are_refused_before_anything_is_made(
    kube: Any, namespace: Any, admin: Any, student_notebook: Path
) -> None:
    from occam.models import serve

    with pytest.raises(ConfigError, match="where='somewhere'"):
        serve("digits", where="somewhere")
    with pytest.raises(ConfigError, match="host and port"):
        serve("digits", port=8080)
    with pytest.raises(ConfigError, match="keep=True"):
        serve("digits", keep=True, where="process")
    assert _service_objects_gone(kube, namespace.name)
