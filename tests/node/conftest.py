"""Fixtures of the ``node`` tier: the real node (session-wide) and images built here.

``real_node`` joins a :class:`~.realnode.RealNode` to the session's control plane (the ``kube``
fixture); ``policy_enforcer`` runs kube-network-policies on it for one module (:mod:`.netpolicy`),
``volume_provisioner`` a dynamic provisioner of ReadWriteMany volumes (:mod:`.provisioner`), and
``service_proxy`` kube-proxy, which routes ClusterIP Services, from the first module that asks for it to
the end of the session (:mod:`.kubeproxy`; it starts in about a second, and its rules change nothing for
tests that use no Service). The tier is
skipped, naming the fix, when the machine cannot run a node (not root, no containerd/runc/CNI plugins, no
kubelet binary), the notebook image has not been built (``make images``), or the cluster is an external one
(``OCCAM_TEST_KUBECONFIG``), whose nodes we do not manage.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.kubernetes.fixtures import Kube

from .images import ImageBuildError, build_all
from .kubeproxy import ServiceProxy, missing_service_proxy
from .netpolicy import PolicyEnforcer, missing_enforcer
from .provisioner import VolumeProvisioner, missing_provisioner
from .realnode import RealNode, missing_capabilities


@pytest.fixture(scope="session")
def real_node(kube: Kube) -> Iterator[RealNode]:
    if kube.control_plane is None:
        pytest.skip("the node tier adds a node to the test control plane; OCCAM_TEST_KUBECONFIG points elsewhere")
    missing = missing_capabilities(kube.control_plane.bin_dir / "kubelet")
    if missing:
        pytest.skip("this machine cannot run a real node; it lacks " + "; ".join(missing))
    try:
        images = build_all()
    except ImageBuildError as exc:
        pytest.skip(f"the node's images are not there: {exc}")
    with RealNode(kube.control_plane, images) as node:
        yield node


@pytest.fixture
def on_real_node(real_node: RealNode) -> Iterator[RealNode]:
    """For the test's duration, new pods are scheduled on the real node only."""
    with real_node.exclusive():
        yield real_node


@pytest.fixture(scope="module")
def policy_enforcer(real_node: RealNode, kube: Kube) -> Iterator[PolicyEnforcer]:
    """kube-network-policies enforcing NetworkPolicies on the real node, for the requesting module."""
    assert kube.control_plane is not None
    missing = missing_enforcer(kube.control_plane.bin_dir)
    if missing:
        pytest.skip(f"no NetworkPolicy enforcement on this machine: {missing}")
    with PolicyEnforcer(kube.control_plane, kube.admin, real_node.name) as enforcer:
        yield enforcer


@pytest.fixture(scope="module")
def volume_provisioner(real_node: RealNode, kube: Kube) -> Iterator[VolumeProvisioner]:
    """occam-hostpath-provisioner making volumes for claims of its StorageClass on the real node, for the module."""
    assert kube.control_plane is not None
    missing = missing_provisioner(kube.control_plane.bin_dir)
    if missing:
        pytest.skip(f"no dynamic volume provisioner on this machine: {missing}")
    with VolumeProvisioner(kube.control_plane, kube.admin, real_node.name) as provisioner:
        yield provisioner


@pytest.fixture(scope="session")
def service_proxy(real_node: RealNode, kube: Kube) -> Iterator[ServiceProxy]:
    """kube-proxy routing the cluster's ClusterIP Services to their pods on the real node."""
    assert kube.control_plane is not None
    missing = missing_service_proxy(kube.control_plane.bin_dir)
    if missing:
        pytest.skip(f"no Service routing on this machine: {missing}")
    with ServiceProxy(kube.control_plane, kube.admin, real_node.name) as proxy:
        yield proxy
