"""Generate the reference parts of docs/spawner.md from the code: every OccamSpawner setting and the hub's ClusterRole.

The settings' ``help`` strings and :func:`spawner.hub_rbac.hub_cluster_role` are the source; the doc holds
a copy between marker comments, so the prose around it is written by hand. ::

    python -m spawner.reference docs/spawner.md          # rewrite the generated parts
    python -m spawner.reference --check docs/spawner.md  # exit 1 if they are out of date

A unit test runs the check, so the doc cannot drift from the code.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from pathlib import Path

from spawner.hub_rbac import hub_cluster_role

SECTIONS = ("settings", "cluster-role")


def _markers(section: str) -> tuple[str, str]:
    return (
        f"<!-- generated:{section} (python -m spawner.reference docs/spawner.md) -->",
        f"<!-- end generated:{section} -->",
    )


def settings_reference() -> str:
    """Markdown for each of OccamSpawner's own settings (those :class:`spawner.settings.OccamSettings` adds to
    KubeSpawner's): name, type, default, and its help text."""
    from spawner.settings import OccamSettings

    parts = []
    for name, trait in sorted(OccamSettings.class_own_traits(config=True).items()):
        help_text = inspect.cleandoc(trait.help or "").replace("\n", " ")
        parts.append(
            f"### `c.OccamSpawner.{name}`\n\n"
            f"{type(trait).__name__}, default `{trait.default_value_repr()}`.\n\n"
            f"{help_text}\n"
        )
    return "\n".join(parts)


def cluster_role_reference() -> str:
    """The hub's ClusterRole as a YAML document (JSON is YAML; one rule per line keeps it short)."""
    role = hub_cluster_role()
    lines = [
        "```yaml",
        f"apiVersion: {role['apiVersion']}",
        f"kind: {role['kind']}",
        f"metadata: {json.dumps(role['metadata'])}",
        "rules:",
    ]
    lines += [f"  - {json.dumps(rule)}" for rule in role["rules"]]
    lines.append("```")
    return "\n".join(lines) + "\n"


def generated(section: str) -> str:
    return {"settings": settings_reference, "cluster-role": cluster_role_reference}[section]()


def render(text: str) -> str:
    """``text`` with every generated section replaced by what the code says now."""
    for section in SECTIONS:
        start, end = _markers(section)
        if start not in text or end not in text:
            raise ValueError(f"the doc has no generated section {section!r}: add the lines\n{start}\n{end}")
        head, rest = text.split(start, 1)
        _old, tail = rest.split(end, 1)
        text = f"{head}{start}\n\n{generated(section)}\n{end}{tail}"
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("doc", type=Path)
    parser.add_argument("--check", action="store_true", help="only report whether the doc is up to date")
    args = parser.parse_args(argv)
    text = args.doc.read_text()
    new = render(text)
    if args.check:
        if new != text:
            print(f"{args.doc} is out of date: run python -m spawner.reference {args.doc}", file=sys.stderr)
            return 1
        return 0
    args.doc.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
