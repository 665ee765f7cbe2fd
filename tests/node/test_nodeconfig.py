"""The node's pure configuration builders, the image archives it imports and the drivers' Python path (no node)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from . import images
from .nodeconfig import GATEWAY, SUBNET, TAINT, cni_config, containerd_config, kubelet_config


def test_pods_get_no_default_route_no_masquerade_and_only_host_routes():
    plugin = cni_config(Path("/x/ipam"), ["192.0.2.2"])["plugins"][0]
    assert plugin["type"] == "bridge" and plugin["ipMasq"] is False and plugin["isDefaultGateway"] is False
    ipam = plugin["ipam"]
    assert ipam["ranges"] == [[{"subnet": SUBNET, "gateway": GATEWAY}]]
    assert ipam["routes"] == [{"dst": "192.0.2.2/32"}]  # never 0.0.0.0/0
    assert ipam["dataDir"] == "/x/ipam"


def test_containerd_keeps_everything_in_its_directories_and_uses_the_pause_image_built_here(tmp_path):
    config = tomllib.loads(containerd_config(tmp_path, tmp_path / "sock", tmp_path / "net.d", tmp_path / "root"))
    assert config["root"] == str(tmp_path / "root") and config["state"] == str(tmp_path / "containerd-state")
    cri = config["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["sandbox_image"] == images.PAUSE_REF
    assert cri["restrict_oom_score_adj"] is True
    assert cri["cni"]["conf_dir"] == str(tmp_path / "net.d")
    assert cri["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is False


def test_the_kubelet_serves_only_authenticated_requests_and_registers_tainted():
    config = kubelet_config(
        ca_file="ca.crt",
        serving=("k.crt", "k.key"),
        runtime_socket="/x/sock",
        cgroup_root="/occam-node-1",
        pod_logs_dir="/x/logs",
        port=1,
        healthz_port=2,
    )
    assert config["authentication"]["anonymous"] == {"enabled": False}
    assert config["authorization"] == {"mode": "Webhook"} and config["readOnlyPort"] == 0
    assert config["registerWithTaints"] == [TAINT]
    assert config["containerRuntimeEndpoint"] == "unix:///x/sock"
    assert config["imageGCHighThresholdPercent"] == 100  # images built here cannot be pulled again


def test_an_oci_archive_is_read_for_its_name_digest_and_size(tmp_path):
    """The node imports what scripts/build-images.sh saves; a hand-made archive of the same shape stands in."""
    import io
    import json
    import tarfile

    index = {"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + "ab" * 32, "size": 3,
         "annotations": {"org.opencontainers.image.ref.name": "localhost/occam-notebook:0.1.0"}}]}  # fmt: skip
    archive = tmp_path / "occam-notebook-0123.tar"
    with tarfile.open(archive, "w") as tar:
        for name, data in [("blobs/sha256/" + "ab" * 32, b"abc"), ("index.json", json.dumps(index).encode())]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    image = images.archived(archive)
    assert image.ref == "localhost/occam-notebook:0.1.0" and image.digest == "sha256:" + "ab" * 32
    assert image.archive == archive and image.size_bytes == 3 + len(json.dumps(index))
    (tmp_path / "exports").mkdir()
    with pytest.raises(images.ImageBuildError, match="make images"):
        images.notebook_image(tmp_path)
    archive.rename(tmp_path / "exports" / archive.name)
    assert images.notebook_image(tmp_path).ref == "localhost/occam-notebook:0.1.0"


def test_a_driver_on_this_machine_runs_this_venv_at_the_image_venv_path():
    """What makes the executors' Python the image's: the driver's sys.executable is the image's venv path."""
    import os
    import subprocess
    import sys

    from .driverproc import image_python

    if os.geteuid() != 0:
        pytest.skip("a mount namespace needs root (as the node tier does)")
    existed = os.path.exists(images.IMAGE_VENV)
    code = "import sys, occam; print(sys.executable); print(sys.prefix); print(sys.version)"
    out = subprocess.run(image_python("-c", code), capture_output=True, text=True, check=True, timeout=60)
    executable, prefix, version = out.stdout.splitlines()[:3]
    assert executable == f"{images.IMAGE_VENV}/bin/python" and prefix == images.IMAGE_VENV
    assert version == sys.version
    assert os.path.exists(images.IMAGE_VENV) == existed  # only the driver's mount namespace saw it
