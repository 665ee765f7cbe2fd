"""The package's layers only look down: no import cycle in ``occam/`` or ``spawner/`` (imports inside functions
and under ``TYPE_CHECKING`` count too), and backend facts stay with the backends.

Read from the source with ``ast``: nothing is imported. docs/development.md draws the layers.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("occam", "spawner")

#: Which top-level parts of ``occam`` may import which (a part is a subpackage or a top-level module).
#: Lower layers never import higher ones; see docs/development.md.
LAYERS: list[set[str]] = [
    {"cli", "executor_entrypoint"},  # entry points
    {"demo"},  # what the entry points run
    {"examples"},  # the digits data and model; a batch script
    {"__init__"},  # the public API re-exports
    {"models"},  # the model store: publish, load, transfer learning, serving
    {"scaling"},  # occam.scaling: starts a cluster per configuration
    {"cluster", "submit", "course"},  # orchestration: start_cluster, occam submit; occam course (admins)
    {"training"},  # what runs on a cluster, asking its backend
    {"tracking"},  # runs the student looks back at: TensorBoard, MLflow, their UIs
    {"data"},
    {"backends"},  # where executors run
    {"kubernetes", "batch", "reaper"},  # the backends' builders and helpers
    {"sparkconf", "validation"},
    {"spec", "config", "resources", "idle", "links"},
    {"contract", "errors", "scripts"},
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}


def imports_of(path: Path, name: str, known: set[str]) -> set[str]:
    """Every module of ``known`` that ``path`` imports, anywhere in the file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # ``from occam import config`` imports the module occam.config, not the package's __init__.
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        for target in targets:
            # The longest known module the target names (``occam.kubernetes.objects.X`` -> that module).
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imports_of(path, name, known) for name, path in mods.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for child in sorted(edges.get(node, ())):
            if child not in index:
                visit(child)
                low[node] = min(low[node], low[child])
            elif child in on_stack:
                low[node] = min(low[node], index[child])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles_between_modules() -> None:
    assert cycles(graph()) == []


def part_of(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def layer_of(part: str) -> int:
    for depth, layer in enumerate(LAYERS):
        if part in layer:
            return depth
    raise AssertionError(f"occam.{part} is in no layer: add it to LAYERS and to docs/development.md's picture")


def test_occam_layers_only_look_down() -> None:
    wrong = []
    for name, targets in graph().items():
        if not name.startswith("occam"):
            continue
        for target in targets:
            if not target.startswith("occam") or part_of(target) == part_of(name):
                continue
            if layer_of(part_of(target)) <= layer_of(part_of(name)):
                wrong.append(f"{name} -> {target}")
    assert wrong == [], "imports that look up or sideways: " + ", ".join(sorted(wrong))


def test_only_the_backends_import_the_kubernetes_builders_or_read_master_urls() -> None:
    # occam.course: the admin's view of a course is its Kubernetes namespaces; there is no backend to ask.
    allowed = ("occam.backends", "occam.kubernetes", "occam.course")
    importers = sorted(
        name
        for name, targets in graph().items()
        if name.startswith("occam") and not name.startswith(allowed)
        for target in targets
        if target.startswith("occam.kubernetes")
    )
    assert importers == [], f"{importers} import occam.kubernetes: ask the cluster's backend instead"
    sniffers = [
        name
        for name, path in modules().items()
        if name.startswith("occam")
        and not name.startswith(("occam.backends", "occam.kubernetes"))
        and re.search(r"""["']k8s://""", path.read_text())
    ]
    assert sniffers == [], f"{sniffers} test a master URL: the session's backend knows where executors run"


def test_the_spawner_reaches_occam_only_through_its_contract_and_kubernetes_builders() -> None:
    reached = {
        target
        for name, targets in graph().items()
        if name.startswith("spawner")
        for target in targets
        if target.startswith("occam")
    }
    assert all(t.startswith(("occam.contract", "occam.kubernetes", "occam.errors")) for t in reached), reached


@pytest.mark.parametrize(
    ("edges", "expected"),
    [({"a": {"b"}, "b": {"a"}}, [["a", "b"]]), ({"a": {"b"}, "b": {"c"}, "c": set()}, [])],
)
def test_the_cycle_finder_finds_cycles(edges: dict[str, set[str]], expected: list[list[str]]) -> None:
    assert cycles(edges) == expected
