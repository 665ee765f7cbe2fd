"""The node's pure configuration builders and the image build's list readers (no node needed)."""

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


def test_the_image_lists_are_read_without_comments_and_pins_must_be_exact(tmp_path, monkeypatch):
    apt = tmp_path / "apt.txt"
    apt.write_text("# Java\nopenjdk-17-jre-headless\n\ntini  # PID 1\n")
    assert images.read_list(apt) == ["openjdk-17-jre-headless", "tini"]
    pins = tmp_path / "req.txt"
    pins.write_text("# frozen\nnumpy==1.26.4\nhorovod[spark]==0.28.1\n")
    monkeypatch.setattr(images, "REQUIREMENTS", pins)
    assert images.pinned_distributions() == {"numpy": "1.26.4", "horovod": "0.28.1"}
    pins.write_text("numpy>=1.26\n")
    with pytest.raises(images.ImageBuildError, match="not an exact pin"):
        images.pinned_distributions()
    with pytest.raises(images.ImageBuildError, match="is missing"):
        images.read_list(tmp_path / "absent.txt")


def test_the_executor_image_runs_as_the_dockerfile_says():
    """USER, WORKDIR, ENTRYPOINT, CMD and ENV of images/notebook/Dockerfile, in the image built here."""
    import json
    import shlex

    text = (images.REPO / "images" / "notebook" / "Dockerfile").read_text().replace("\\\n", " ")
    instructions = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions[keyword] = rest.strip()
    config = images.executor_config()
    assert config["User"] == instructions["USER"]
    assert config["WorkingDir"] == instructions["WORKDIR"]
    assert config["Entrypoint"] == json.loads(instructions["ENTRYPOINT"])
    assert config["Cmd"] == json.loads(instructions["CMD"])
    dockerfile_env = dict(item.split("=", 1) for item in shlex.split(instructions["ENV"]))
    dockerfile_env["OCCAM_IMAGE_VARIANT"] = "cpu"  # ${VARIANT}: the test image is the CPU variant
    assert dict(item.split("=", 1) for item in config["Env"]) == dockerfile_env
