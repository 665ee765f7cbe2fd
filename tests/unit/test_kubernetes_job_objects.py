"""The pure builders and readings of a Kubernetes batch job's objects."""

from __future__ import annotations

import base64

import pytest

from occam.kubernetes.job_objects import (
    AUTH_MOUNT,
    DRIVER_KEY,
    JOB_DIR,
    driver_exit_code,
    driver_pod_name,
    driver_pod_template,
    driver_started,
    job_auth_secret,
    job_configmap,
)
from occam.kubernetes.objects import (
    AUTH_SECRET_KEY,
    CLUSTER_LABEL,
    COMPONENT_LABEL,
    executor_pod_template,
    new_auth_secret_value,
)

from .factories import DNS_LABEL, settings, spec

DRIVER = {"metadata": {"name": "digits-driver", "uid": "1234-abcd"}}


def test_driver_pod_template_runs_as_the_given_account_with_its_token_and_the_job_mounted():
    template = driver_pod_template(spec(2, name="digits"), settings(user="ada"), service_account="occam-notebook")
    pod = template["spec"]
    assert template["metadata"]["labels"][CLUSTER_LABEL] == "digits"
    assert template["metadata"]["labels"][COMPONENT_LABEL] == "driver"
    assert pod["serviceAccountName"] == "occam-notebook"
    assert pod["automountServiceAccountToken"] is True  # the driver creates executor pods with it
    [container] = pod["containers"]
    assert container["name"] == "driver" and container["image"] == "img:1"
    assert container["volumeMounts"] == [{"name": "occam-job", "mountPath": JOB_DIR, "readOnly": True}]
    assert pod["volumes"] == [{"name": "occam-job", "configMap": {"name": "digits-job"}}]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True


def test_the_driver_mounts_the_shared_work_volume_where_the_executors_do():
    pvc = {"persistentVolumeClaim": {"claimName": "course-work"}}
    shared_settings = settings(shared_volume=pvc, shared_path="/srv/occam-work")
    template = driver_pod_template(spec(2, name="digits"), shared_settings, service_account="sa")
    executor = executor_pod_template(spec(2, name="digits"), shared_settings)
    shared_volume = {"name": "occam-shared-work", **pvc}
    assert shared_volume in template["spec"]["volumes"] and shared_volume in executor["spec"]["volumes"]
    [container] = template["spec"]["containers"]
    mount = {"name": "occam-shared-work", "mountPath": "/srv/occam-work", "readOnly": False}
    assert mount in container["volumeMounts"] and mount in executor["spec"]["containers"][0]["volumeMounts"]
    assert {"name": "occam-job", "mountPath": JOB_DIR, "readOnly": True} in container["volumeMounts"]


def test_gpu_jobs_do_not_give_the_driver_a_gpu():
    template = driver_pod_template(spec(2, gpu=True, name="g"), settings(), service_account="sa")
    assert "resources" not in template["spec"]["containers"][0]
    assert "nodeSelector" not in template["spec"] and "tolerations" not in template["spec"]


def test_names_are_dns_labels():
    for name in ("digits", "A Very_Long Job Name " * 5):
        job = spec(1, name=name)
        assert DNS_LABEL.match(driver_pod_name(job))


def test_job_configmap_holds_the_script_and_is_owned_by_the_driver_pod():
    cm = job_configmap(spec(2, name="digits"), settings(), file_name="train.py", source="print(1)\n", driver_pod=DRIVER)
    assert cm["metadata"]["name"] == "digits-job" and cm["metadata"]["namespace"] == "jane"
    assert cm["data"] == {"train.py": "print(1)\n"}
    assert cm["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Pod", "name": "digits-driver", "uid": "1234-abcd", "controller": True}
    ]


def test_job_secret_gives_driver_and_executors_the_same_key():
    value = new_auth_secret_value()
    secret = job_auth_secret(spec(2, name="digits"), settings(pod_uid="nb-uid"), value, driver_pod=DRIVER)
    assert secret["metadata"]["name"] == "digits-spark-auth"
    # Owned by the job's driver pod, not by the notebook it was submitted from.
    assert [ref["uid"] for ref in secret["metadata"]["ownerReferences"]] == ["1234-abcd"]
    executors_key = base64.b64decode(secret["data"][AUTH_SECRET_KEY]).decode()
    driver_file = base64.b64decode(secret["data"][DRIVER_KEY])
    # Spark uses the base64 text of the driver's file as its key: it must be what executors read.
    assert executors_key == value == base64.b64encode(driver_file).decode()
    assert AUTH_MOUNT.startswith("/")


def pod(phase=None, **state):
    status = {"containerStatuses": [{"name": "driver", "state": state}]} if state else {}
    if phase:
        status["phase"] = phase
    return {"status": status}


@pytest.mark.parametrize(
    ("driver", "code", "started"),
    [
        (pod("Pending"), None, False),
        (pod("Pending", waiting={"reason": "ContainerCreating"}), None, False),
        (pod("Running", running={}), None, True),
        (pod("Succeeded", terminated={"exitCode": 0}), 0, True),
        (pod("Failed", terminated={"exitCode": 3}), 3, True),
        (pod("Failed"), 1, True),  # evicted: no container ever ended
        (pod("Succeeded"), 0, True),
    ],
)
def test_driver_exit_code_and_started(driver, code, started):
    assert driver_exit_code(driver) == code
    assert driver_started(driver) is started
