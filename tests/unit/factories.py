"""Small builders of valid requests and settings for unit tests; each test overrides what it is about."""

from __future__ import annotations

import re
from typing import Any

from occam.kubernetes.settings import KubernetesSettings
from occam.spec import ClusterSpec, make_spec

#: What Kubernetes accepts as a label value (may be empty) and as a DNS-1123 label (object names).
LABEL_VALUE = re.compile(r"^$|^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$")
DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


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
