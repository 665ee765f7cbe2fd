"""The Kubernetes objects of a model service (occam.kubernetes.serving): pure builders, no cluster."""

from __future__ import annotations

import re

import pytest

from occam.contract import SERVING_PORT
from occam.errors import ConfigError
from occam.kubernetes.serving import (
    cluster_ip_service,
    deployment,
    host_allowlist,
    in_cluster_url,
    kept_job,
    owned_by,
    proxy_base,
    proxy_host_allowed,
    selector,
    service_name,
    serving_labels,
    token_secret,
)
from occam.kubernetes.settings import KubernetesSettings
from tests.unit import factories

SHARED = {"shared_volume": {"persistentVolumeClaim": {"claimName": "work"}}, "shared_path": "/work"}
MODEL_DIR = "/work/models/jane/digits-cnn/3"


def settings(**overrides: object) -> KubernetesSettings:
    return factories.settings(pod_uid="uid-1", user="jane", **{**SHARED, **overrides})


@pytest.mark.parametrize("model", ["digits-cnn", "Plankton_CNN.v2", "x" * 100, "ü"])
def test_names_are_dns_labels(model: str) -> None:
    name = service_name(model, 12)
    assert len(name) <= 63 and re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?", name), name
    assert name.endswith("-v12")
    assert service_name("x" * 100, 1) != service_name("x" * 99 + "y", 1)


def test_the_pod_is_locked_down_reads_the_model_read_only_and_gets_its_token_as_a_file() -> None:
    manifest = deployment(settings(), model="digits-cnn", version=3, model_dir=MODEL_DIR, cpu="500m", memory="1Gi")
    assert manifest["kind"] == "Deployment" and manifest["spec"]["replicas"] == 1
    template = manifest["spec"]["template"]
    assert manifest["spec"]["selector"]["matchLabels"] == template["metadata"]["labels"]
    pod = template["spec"]
    (container,) = pod["containers"]
    assert pod["automountServiceAccountToken"] is False and pod["restartPolicy"] == "Always"
    assert pod["securityContext"] == {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["resources"]["requests"] == container["resources"]["limits"] == {"cpu": "500m", "memory": "1Gi"}
    assert all(m["readOnly"] for m in container["volumeMounts"])
    token_volume = next(v for v in pod["volumes"] if "secret" in v)
    assert token_volume["secret"] == {"secretName": "occam-serve-digits-cnn-v3", "defaultMode": 0o444}
    command = container["command"]
    assert command[command.index("--model-dir") + 1] == MODEL_DIR
    assert command[command.index("--port") + 1] == str(SERVING_PORT) and "--token-file" in command
    assert "env" not in container and not any("token" in part and "=" in part for part in command)
    assert manifest["metadata"]["ownerReferences"][0]["uid"] == "uid-1"


def test_the_service_is_cluster_ip_in_front_of_the_pod_and_the_secret_holds_the_token() -> None:
    service = cluster_ip_service(settings(), model="digits-cnn", version=3)
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["selector"] == serving_labels(settings(), "digits-cnn", "occam-serve-digits-cnn-v3")
    pod_labels = deployment(settings(), model="digits-cnn", version=3, model_dir=MODEL_DIR)["spec"]["template"]
    assert service["spec"]["selector"] == pod_labels["metadata"]["labels"]
    assert service["spec"]["ports"][0]["targetPort"] == SERVING_PORT
    secret = token_secret(settings(), "digits-cnn", 3, "s3cret-token")
    assert secret["stringData"] == {"token": "s3cret-token"} and secret["metadata"]["name"] == service_name(
        "digits-cnn", 3
    )
    with pytest.raises(ConfigError, match="token"):
        token_secret(settings(), "digits-cnn", 3, "has space")


def test_kept_services_are_not_owned_by_the_notebook() -> None:
    for manifest in (
        deployment(settings(), model="m", version=1, model_dir=MODEL_DIR, keep=True),
        cluster_ip_service(settings(), model="m", version=1, keep=True),
        token_secret(settings(), "m", 1, "tok", keep=True),
    ):
        assert "ownerReferences" not in manifest["metadata"]
        assert manifest["metadata"]["namespace"] == "jane"


def test_a_kept_service_with_an_idle_limit_is_a_job_that_ends_by_itself_and_is_then_deleted() -> None:
    job = kept_job(settings(), model="m", version=1, model_dir=MODEL_DIR, idle_minutes=90, cpu="2", memory="1Gi")
    assert job["apiVersion"] == "batch/v1" and job["kind"] == "Job"
    assert "ownerReferences" not in job["metadata"]  # kept: not deleted with the notebook
    spec = job["spec"]
    assert spec["completions"] == 1 and spec["parallelism"] == 1
    assert 0 < spec["backoffLimit"] <= 5  # a crash restarts it, a few times
    assert 0 < spec["ttlSecondsAfterFinished"] <= 300  # finished: deleted soon, pod included
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "OnFailure"
    command = pod["containers"][0]["command"]
    assert command[command.index("--idle-exit") + 1] == "5400"  # seconds
    assert pod["containers"][0]["resources"]["limits"] == {"cpu": "2", "memory": "1Gi"}
    # The Service selects its pod: the template has every label the Service's selector names.
    service = cluster_ip_service(settings(), model="m", version=1, keep=True)
    assert service["spec"]["selector"].items() <= spec["template"]["metadata"]["labels"].items()
    # The same locked-down pod as a Deployment's, but for its restart policy and the idle limit.
    same = deployment(settings(), model="m", version=1, model_dir=MODEL_DIR, cpu="2", memory="1Gi")["spec"]
    same_pod = same["template"]["spec"]
    assert {**pod, "restartPolicy": "Always", "containers": None} == {**same_pod, "containers": None}
    assert command[: command.index("--idle-exit")] == same_pod["containers"][0]["command"]
    for minutes in (0, -1, True):
        with pytest.raises(ConfigError, match="idle limit"):
            kept_job(settings(), model="m", version=1, model_dir=MODEL_DIR, idle_minutes=minutes)


def test_a_kept_services_service_and_secret_are_owned_by_its_job() -> None:
    job = kept_job(settings(), model="m", version=1, model_dir=MODEL_DIR, idle_minutes=1)
    created = {**job, "metadata": {**job["metadata"], "uid": "job-uid-1"}}
    for manifest in (
        cluster_ip_service(settings(), model="m", version=1, keep=True),
        token_secret(settings(), "m", 1, "tok", keep=True),
    ):
        owned = owned_by(manifest, created)
        (reference,) = owned["metadata"]["ownerReferences"]
        assert reference == {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": "occam-serve-m-v1",
            "uid": "job-uid-1",
            "controller": False,
            "blockOwnerDeletion": False,
        }
        assert "ownerReferences" not in manifest["metadata"]  # the builder's own object is left as it was
    with pytest.raises(ConfigError, match="no uid"):
        owned_by(cluster_ip_service(settings(), model="m", version=1, keep=True), job)


def test_the_model_must_be_on_the_shared_work_volume() -> None:
    with pytest.raises(ConfigError, match="shared work volume"):
        deployment(factories.settings(), model="m", version=1, model_dir=MODEL_DIR)
    with pytest.raises(ConfigError, match="not on the shared work volume"):
        deployment(settings(), model="m", version=1, model_dir="/home/jane/models/m/1")


def test_two_versions_of_a_model_are_two_services_that_select_only_their_own_pod() -> None:
    one, two = (cluster_ip_service(settings(), model="m", version=v)["spec"]["selector"] for v in (1, 2))
    assert one != two and one["occam.io/model-service"] == "occam-serve-m-v1"
    assert selector({"b": "2", "a": "1"}) == "a=1,b=2"


def test_behind_jupyterhub_the_service_answers_under_the_proxys_absolute_path() -> None:
    base = proxy_base("/user/jane/", "occam-serve-m-v1")
    assert base == "/user/jane/proxy/absolute/occam-serve-m-v1:80"
    command = deployment(settings(), model="m", version=1, model_dir=MODEL_DIR, base_path=base)["spec"]["template"][
        "spec"
    ]["containers"][0]["command"]
    assert command[command.index("--proxy-base") + 1] == base
    assert (
        "--proxy-base"
        not in deployment(settings(), model="m", version=1, model_dir=MODEL_DIR)["spec"]["template"]["spec"][
            "containers"
        ][0]["command"]
    )
    assert proxy_base(None, "occam-serve-m-v1") == "" and proxy_base("", "x") == ""
    assert in_cluster_url(settings(), "occam-serve-m-v1", base) == f"http://occam-serve-m-v1.jane.svc:80{base}"


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("occam-serve-digits-cnn-v3", True),
        (service_name("x" * 100, 7), True),
        ("localhost", True),  # jupyter-server-proxy's own default, kept
        ("127.0.0.1", True),
        ("occam-serve-m-v1.other-student.svc", False),  # another namespace
        ("occam-serve-m-v1.other-student", False),
        ("kubernetes.default.svc", False),
        ("10.96.0.1", False),
        ("occam-serve-", False),
        ("occam-serve-M-v1", False),
        ("hub", False),
        ("169.254.169.254", False),
    ],
)
def test_the_notebooks_proxy_forwards_only_to_the_namespaces_own_model_services(host: str, allowed: bool) -> None:
    assert host_allowlist(object(), host) is allowed
    assert proxy_host_allowed(host) is (allowed and host.startswith("occam-serve-"))


def test_the_notebook_images_jupyter_config_installs_the_allowlist() -> None:
    """The file the notebook image installs as /etc/jupyter/jupyter_server_config.py, run as Jupyter runs it."""
    from pathlib import Path
    from types import SimpleNamespace

    config = Path(__file__).resolve().parents[2] / "images" / "notebook" / "jupyter_server_config.py"
    c = SimpleNamespace(ServerProxy=SimpleNamespace())
    exec(compile(config.read_text(), str(config), "exec"), {"c": c})
    assert c.ServerProxy.host_allowlist is host_allowlist
    dockerfile = (config.parent / "Dockerfile").read_text()
    assert "COPY images/notebook/jupyter_server_config.py /etc/jupyter/jupyter_server_config.py" in dockerfile
