"""Test tiers: each test is marked by the folder it lives in (tests/unit -> unit, tests/local -> local,
tests/kubernetes -> kubernetes).

Select a tier with ``pytest -m unit``, ``pytest -m local`` or ``pytest -m kubernetes``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

TIERS = {"unit", "local", "kubernetes"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        tier = Path(str(item.fspath)).parent.name
        if tier in TIERS:
            item.add_marker(getattr(pytest.mark, tier))
