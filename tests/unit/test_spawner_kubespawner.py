"""What OccamSpawner relies on in KubeSpawner's private code, checked so that an upgrade fails here, loudly.

OccamSpawner overrides ``KubeSpawner._ensure_namespace`` (private) to check node fit and prepare the
student's namespace. That works only while KubeSpawner's ``_start`` calls it, with no arguments, after
applying the profile (``load_user_options``) and before building the pod (``get_pod_manifest``). These
tests pin the KubeSpawner version they were written for; on an upgrade, re-read ``_start`` and
``_ensure_namespace`` in the new version, adjust spawner/spawner.py if needed, then update
:data:`CHECKED_VERSION`.
"""

from __future__ import annotations

import inspect
from importlib.metadata import version

import pytest

pytest.importorskip("kubespawner", reason="the spawner needs the hub extra: pip install -e '.[hub]'")

from kubespawner import KubeSpawner  # noqa: E402

from spawner.spawner import OccamSpawner  # noqa: E402

#: The KubeSpawner whose ``_start`` and ``_ensure_namespace`` the override was checked against.
CHECKED_VERSION = "7.1.0"

INSTALLED = version("jupyterhub-kubespawner")
RECHECK = (
    f"KubeSpawner {INSTALLED} changed _ensure_namespace; re-check spawner/spawner.py's override "
    f"(written for KubeSpawner {CHECKED_VERSION}), then update CHECKED_VERSION in {__name__}"
)


def test_the_installed_kubespawner_is_the_one_the_override_was_checked_against():
    assert INSTALLED == CHECKED_VERSION, RECHECK


def test_kubespawner_still_has_the_private_method_with_the_same_signature():
    original = getattr(KubeSpawner, "_ensure_namespace", None)
    assert original is not None, RECHECK
    assert inspect.iscoroutinefunction(original), RECHECK
    assert list(inspect.signature(original).parameters) == ["self"], RECHECK
    # The override really replaces it, with the same shape.
    assert OccamSpawner._ensure_namespace is not original
    assert inspect.iscoroutinefunction(OccamSpawner._ensure_namespace)
    assert list(inspect.signature(OccamSpawner._ensure_namespace).parameters) == ["self"]


def test_kubespawner_still_calls_it_after_the_profile_and_before_the_pod():
    assert "self._start()" in inspect.getsource(KubeSpawner.start), RECHECK
    assert OccamSpawner.start is KubeSpawner.start and OccamSpawner._start is KubeSpawner._start
    source = inspect.getsource(KubeSpawner._start)
    assert "await self._ensure_namespace()" in source, RECHECK
    assert "if self.enable_user_namespaces:" in source, RECHECK  # always True for OccamSpawner
    profile, namespace, pod = (
        source.find("self.load_user_options()"),
        source.find("self._ensure_namespace()"),
        source.find("self.get_pod_manifest()"),
    )
    assert -1 < profile < namespace < pod, RECHECK
