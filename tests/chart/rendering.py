"""Helpers of the chart tests: the chart, its values files, and rendering through Helm (helm-python-sdk).

Helm runs for real, as a library (Helm 4 through ``helm_python``): loading, schema validation, template
rendering, lint. The Zero to JupyterHub dependency cannot be fetched here, so renders and installs see
Occam's own templates only (a declared dependency missing from ``charts/`` renders as absent).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "occam"
VALUES_DIR = Path(__file__).with_name("values")
RELEASE = "occam"
NAMESPACE = "jhub"
KUBE_VERSION = "v1.34.10"


#: The values an admin adds to the chart's defaults: an authenticator (the chart refuses Zero to JupyterHub's
#: default dummy one, so every install must), a ReadWriteMany StorageClass for the students' work volumes (on by
#: default, the chart refuses to render without one) and the API server's endpoints (optional: helm install looks them
#: up; without them the API server's ports are open on any address). Tests that render "the defaults" render these.
API_SERVER_CIDRS = ["10.0.0.5/32"]
ADMIN_DEFAULTS: dict[str, Any] = {
    "occam": {"network": {"apiServerCIDRs": API_SERVER_CIDRS}, "sharedWork": {"storageClass": "nfs-client"}},
    "jupyterhub": {"hub": {"config": {"JupyterHub": {"authenticator_class": "github"}}}},
}


def values_file(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((VALUES_DIR / name).read_text()) or {}
    return loaded


def expected_error(name: str) -> str:
    """The ``# expect: <regex>`` line of a bad values file: what the failure message must say."""
    match = re.search(r"^# expect: (.+)$", (VALUES_DIR / name).read_text(), re.MULTILINE)
    if match is None:
        raise ValueError(f"{name} has no '# expect: <regex>' line")
    return match.group(1)


def render(
    values: dict[str, Any] | None = None, *, release: str = RELEASE, namespace: str = NAMESPACE
) -> dict[str, str]:
    """Template path -> rendered text, as ``helm template`` would print them (NOTES.txt included).

    ``values`` None: :data:`ADMIN_DEFAULTS`, the chart's defaults as an admin must complete them.
    """
    import helm_python as helm

    if values is None:
        values = ADMIN_DEFAULTS

    with helm.Chart.load(CHART) as chart:
        return chart.render(values, name=release, namespace=namespace, is_install=True)


def objects(values: dict[str, Any] | None = None, **kwargs: Any) -> list[dict[str, Any]]:
    """Every Kubernetes object the chart renders with ``values``."""
    found = []
    for path, text in sorted(render(values, **kwargs).items()):
        if path.endswith("NOTES.txt"):
            continue
        found.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return found


def by_kind(items: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [item for item in items if item["kind"] == kind]


def copy_without_dependency(destination: Path) -> Path:
    """A copy of the chart whose Chart.yaml declares no dependency (what lint can judge without Z2JH)."""
    target = destination / "occam"
    shutil.copytree(CHART, target, ignore=shutil.ignore_patterns("charts", "Chart.lock"))
    metadata = yaml.safe_load((target / "Chart.yaml").read_text())
    metadata.pop("dependencies")
    (target / "Chart.yaml").write_text(yaml.safe_dump(metadata, sort_keys=False))
    return target
