"""The facts about Zero to JupyterHub that the occam chart relies on, recorded from one Z2JH release.

The Z2JH chart cannot be fetched where the tests run, so ``z2jh-facts.json`` (next to this file) records
from the pinned release: its version and the JupyterHub and kubespawner it ships; every key path of its
``values.schema.yaml`` (``paths``), and the paths below which it takes any key (``open``: pass-through
config such as ``hub.config``); and the few behaviours the chart depends on (``facts``), each with where
in Z2JH's source it was read. The chart tests check that every ``jupyterhub:`` key the chart's values set
exists in that schema.

Refresh it when the pinned release changes (Chart.yaml's dependency version)::

    git clone --depth 1 --branch <tag> https://github.com/jupyterhub/zero-to-jupyterhub-k8s /tmp/z2jh
    .venv/bin/python -m tests.chart.z2jh_facts /tmp/z2jh <tag>

then re-read the ``facts`` entries against that release's files and update them by hand.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

FACTS_FILE = Path(__file__).with_name("z2jh-facts.json")


def schema_paths(schema: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, bool]]:
    """``(path, open)`` for every property of a JSON schema; ``open``: the object also takes keys it does not list."""
    for name, sub in (schema.get("properties") or {}).items():
        path = f"{prefix}{name}"
        sub = sub or {}
        # JSON schema's default: an object takes keys it does not list, unless additionalProperties is false;
        # patternProperties (hub.config: class names) also take keys we cannot list.
        open_ = "object" in _types(sub) and (
            sub.get("additionalProperties", True) is not False or bool(sub.get("patternProperties"))
        )
        yield path, open_
        yield from schema_paths(sub, f"{path}.")


def _types(schema: dict[str, Any]) -> list[str]:
    kind = schema.get("type", [])
    return [kind] if isinstance(kind, str) else list(kind)


def load() -> dict[str, Any]:
    facts: dict[str, Any] = json.loads(FACTS_FILE.read_text())
    return facts


def known(path: str, facts: dict[str, Any]) -> bool:
    """Whether ``path`` (dotted, under ``jupyterhub:``) is a key of the recorded Z2JH schema."""
    if path in facts["paths"]:
        return True
    return any(path.startswith(f"{parent}.") for parent in facts["open"])


def refresh(checkout: Path, tag: str) -> None:
    import yaml

    schema = yaml.safe_load((checkout / "jupyterhub" / "values.schema.yaml").read_text())
    found = dict(schema_paths(schema))
    facts = load() if FACTS_FILE.exists() else {"facts": {}}
    facts.update(
        {
            "release": tag,
            "paths": sorted(found),
            "open": sorted(path for path, open_ in found.items() if open_),
        }
    )
    FACTS_FILE.write_text(json.dumps(facts, indent=1) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m tests.chart.z2jh_facts <z2jh checkout> <tag>")
    refresh(Path(sys.argv[1]), sys.argv[2])
