"""Test tiers: each test is marked by the folder it lives in (tests/unit -> unit, tests/consistency ->
consistency, tests/local -> local, tests/kubernetes -> kubernetes, tests/hub -> hub, tests/chart -> chart,
tests/node -> node).

Select a tier by its folder (``pytest tests/unit``: only that folder is collected), or by marker across folders.
"""

from __future__ import annotations

from pathlib import Path

import pytest

# The cluster fixtures (kube, namespace, admin, notebook) live in one module so that every tier using them shares
# one control plane per session.
pytest_plugins = ["tests.kubernetes.fixtures"]

TIERS = {"unit", "consistency", "local", "kubernetes", "hub", "chart", "node"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        tier = Path(str(item.fspath)).parent.name
        if tier in TIERS:
            item.add_marker(getattr(pytest.mark, tier))
