"""Each student's own work volume (spawner.work_volume) and how OccamSpawner mounts it."""

from __future__ import annotations

import pytest

from spawner.work_volume import WORK_CLAIM, check_work_storage, work_claim, work_volume_source


def test_the_claim_is_read_write_many_from_the_class_in_the_student_s_namespace():
    claim = work_claim("occam-ada", {"occam.io/user": "ada"}, "nfs-client", "10Gi")
    assert claim["metadata"] == {"name": WORK_CLAIM, "namespace": "occam-ada", "labels": {"occam.io/user": "ada"}}
    assert claim["spec"] == {
        "accessModes": ["ReadWriteMany"],  # executors on any node mount it with the notebook
        "storageClassName": "nfs-client",
        "resources": {"requests": {"storage": "10Gi"}},  # what the namespace's requests.storage quota counts
    }
    assert work_volume_source() == {"persistentVolumeClaim": {"claimName": WORK_CLAIM}}


@pytest.mark.parametrize(
    ("storage_class", "size", "message"),
    [
        ("", "10Gi", "work_storage_class"),
        ("NFS Client", "10Gi", "work_storage_class"),
        ("nfs", "lots", "work_storage_size"),
        ("nfs", "0", "work_storage_size"),
    ],
)
def test_bad_settings_name_the_setting(storage_class, size, message):
    with pytest.raises(ValueError, match=message):
        check_work_storage(storage_class, size)
