"""Fixtures of the hub tier: the hub's least-privilege account, and a real JupyterHub process using it.

``hub_kubeconfig``: a ServiceAccount ``occam-hub/hub`` bound to :func:`spawner.hub_rbac.hub_cluster_role`
and nothing else, with a TokenRequest token in a kubeconfig. The hub runs with only that, so every hub
test also proves the documented ClusterRole is enough.

``hub``: one ``jupyterhub`` process per session (see :mod:`.hubprocess`) with OccamSpawner, a CPU
profile (the default) and two GPU profiles: ``gpu`` fits the control plane's kwok GPU nodes
(``occam.io/gpu=true``, 2 GPUs, tainted ``nvidia.com/gpu``), ``gpu-a100`` asks for a node label no node has.
The notebook container is stood in for by a real Jupyter server on loopback (:mod:`.standin`).

``student``: a fresh username whose namespace is deleted after the test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from spawner.hub_rbac import CLUSTER_ROLE
from tests.kubernetes.fixtures import Kube
from tests.kubernetes.pki import write_kubeconfig
from tests.kubernetes.student import restricted_pod_spec, wait_until

from .hubprocess import CHP_INSTALL, HubProcess, find_chp, hub_account_kubeconfig

HUB_NAMESPACE = "occam-hub"
HUB_ACCOUNT = "hub"
PAUSE = "registry.k8s.io/pause:3.10"
EXECUTOR_IMAGE = "reg.example/occam-executor:1"
COURSE = {"max_executors": 3, "cpu": "6", "memory": "12Gi", "gpus": 0}
GPU_COURSE = {"max_executors": 2, "cpu": "6", "memory": "12Gi", "gpus": 3}

SPAWNER_CONFIG = f"""
from spawner.profiles import cpu_profile, gpu_profile
from tests.hub import standin

c.OccamSpawner.image = {PAUSE!r}
c.OccamSpawner.executor_image = {EXECUTOR_IMAGE!r}
c.OccamSpawner.hub_namespace = {HUB_NAMESPACE!r}
c.OccamSpawner.course_limits = {COURSE!r}
c.OccamSpawner.profile_list = [
    cpu_profile("CPU", cpu=1, memory="1G", default=True),
    gpu_profile("GPU", cpu=1, memory="1G", gpus=1, node_selector={{"occam.io/gpu": "true"}}, course_limits={GPU_COURSE!r}),
    gpu_profile(
        "GPU A100", cpu=1, memory="1G", gpus=1, node_selector={{"occam.io/gpu-model": "a100"}},
        course_limits={GPU_COURSE!r},
    ),
]
# The stand-in for the notebook container (tests/hub/standin.py): KubeSpawner's and JupyterHub's own hooks.
c.OccamSpawner.get_pod_url = standin.pod_url
c.Spawner.post_stop_hook = standin.stop
"""


@pytest.fixture(scope="session")
def chp() -> str:
    found = find_chp()
    if found is None:
        pytest.skip(f"the hub tier needs configurable-http-proxy (the hub's real proxy): run `{CHP_INSTALL}`")
    return found


@pytest.fixture(scope="session")
def hub_kubeconfig(kube: Kube, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The hub's credentials: a ServiceAccount with the documented ClusterRole only; removed afterwards."""
    from kubernetes import client

    path = tmp_path_factory.mktemp("hub-account") / "hub.kubeconfig"
    yield hub_account_kubeconfig(kube.admin, path, namespace=HUB_NAMESPACE, account=HUB_ACCOUNT)
    rbac = client.RbacAuthorizationV1Api(kube.admin)
    for delete in (
        lambda: rbac.delete_cluster_role_binding(CLUSTER_ROLE),
        lambda: rbac.delete_cluster_role(CLUSTER_ROLE),
        lambda: client.CoreV1Api(kube.admin).delete_namespace(HUB_NAMESPACE),
    ):
        try:
            delete()
        except client.ApiException as exc:
            if exc.status != 404:
                raise


@pytest.fixture(scope="session")
def hub(hub_kubeconfig: Path, chp: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    with HubProcess(tmp_path_factory.mktemp("hub"), hub_kubeconfig, SPAWNER_CONFIG, chp=chp) as process:
        yield process


@pytest.fixture
def student(kube: Kube, hub: HubProcess) -> Iterator[str]:
    """A fresh username; afterwards its server is stopped (if left) and its namespace deleted."""
    with hub.new_student(kube.admin) as name:
        yield name


def sa_token_client(kube: Kube, namespace: str, account: str, workdir: Path) -> Any:
    """A ``kubernetes.client.ApiClient`` acting as ServiceAccount ``namespace/account`` (TokenRequest token)."""
    from kubernetes import client, config

    core = client.CoreV1Api(kube.admin)
    token = wait_until(
        f"a token of ServiceAccount {namespace}/{account}",
        lambda: core.create_namespaced_service_account_token(
            account, namespace, {"spec": {"expirationSeconds": 3600}}
        ).status.token,
    )
    ca = kube.admin.configuration.ssl_ca_cert
    path = write_kubeconfig(
        workdir / f"{namespace}-{account}.kubeconfig",
        kube.admin.configuration.host,
        Path(ca).read_bytes() if ca else None,
        {"token": token},
        namespace=namespace,
    )
    return config.new_client_from_config(str(path))


def executor_pod(name: str, labels: dict[str, str]) -> dict[str, Any]:
    """An executor-like pod (pause image, within the LimitRange, meeting Pod Security's restricted level, which
    student namespaces enforce), labelled as the Kubernetes backend does."""
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": restricted_pod_spec(
            {
                "name": "executor",
                "image": PAUSE,
                "resources": {
                    "requests": {"cpu": "500m", "memory": "512Mi"},
                    "limits": {"cpu": "500m", "memory": "512Mi"},
                },
            }
        ),
    }
