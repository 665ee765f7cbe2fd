"""Small builders of valid requests and settings for unit tests; each test overrides what it is about."""

from __future__ import annotations

from typing import Any

from occam.kubernetes.settings import KubernetesSettings
from occam.spec import ClusterSpec, make_spec


def spec(n: Any = 2, **overrides: Any) -> ClusterSpec:
    args: dict[str, Any] = {"cores": 1, "memory": "1g", "gpu": False, "timeout": 60}
    args.update(overrides)
    return make_spec(n, **args)


def settings(**overrides: Any) -> KubernetesSettings:
    args: dict[str, Any] = {
        "namespace": "jane",
        "pod_name": "jupyter-jane",
        "pod_ip": "10.1.2.3",
        "executor_image": "img:1",
    }
    args.update(overrides)
    return KubernetesSettings(**args)
