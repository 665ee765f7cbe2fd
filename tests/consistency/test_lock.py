"""The project's lock (images/requirements/*.txt) is one set of versions for every environment, and the venv the
tests run in was installed from it.

These checks read only the repository and this venv's own metadata: nothing here asks a package index, so the
same commit passes on any day, whatever the index serves (issue: the suite used to compare the venv, resolved
afresh each day, with the frozen files). The lock changes only through ``make freeze``.
"""

from __future__ import annotations

import hashlib
import re
import shlex
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.consistency.dockerfiles import frozen_pins
from tests.consistency.test_images import FROZEN, ROOT, canonical, closure, freeze_script, pyproject

SETUP = ROOT / "scripts" / "setup-venv.sh"
STAMP = Path(sys.prefix) / ".occam-lock"


def venv_lock() -> dict[str, str]:
    """``name -> version`` of everything the development venv is installed from."""
    pins: dict[str, str] = {}
    for kind in freeze_script().VENV_LOCK:
        pins.update(frozen_pins(FROZEN[kind]))
    return pins


def test_every_lock_file_is_written_by_the_freeze_script() -> None:
    assert set(FROZEN) == set(freeze_script().KINDS)
    assert set(freeze_script().VENV_LOCK) == {"build-tools", "notebook-cpu", "dev"}


def test_a_package_has_one_version_in_every_lock_file() -> None:
    seen: dict[str, tuple[str, str]] = {}
    clashes = []
    for kind, path in sorted(FROZEN.items()):
        for name, version in frozen_pins(path).items():
            if name in seen and seen[name][1] != version:
                clashes.append(f"{name}: {seen[name][0]} has {seen[name][1]}, {kind} has {version}")
            seen.setdefault(name, (kind, version))
    assert not clashes, f"the lock files disagree: {clashes}; run make freeze"


def test_dev_file_adds_only_what_the_notebook_image_lacks_and_holds_the_dev_and_hub_extras() -> None:
    cpu = frozen_pins(FROZEN["notebook-cpu"])
    dev = frozen_pins(FROZEN["dev"])
    assert not set(cpu) & set(dev), "dev.txt repeats notebook-cpu.txt's pins: the venv is notebook-cpu plus dev"
    both = {**cpu, **dev}
    extras = pyproject()["project"]["optional-dependencies"]
    for line in [*extras["dev"], *extras["hub"]]:
        req = Requirement(line)
        name = canonical(req.name)
        assert name in both, f"the lock lacks {name} ({line} in pyproject.toml): run make freeze"
        assert req.specifier.contains(both[name], prereleases=True), f"{name}=={both[name]} is outside {line}"


def test_lock_files_are_complete_so_pip_install_no_deps_works() -> None:
    """Each file holds the closure of its top-level requirements (per this venv's metadata)."""
    extras = pyproject()["project"]["optional-dependencies"]
    venv = venv_lock()
    missing = closure([*extras["dev"], *extras["hub"]]) - set(venv)
    assert not missing, f"notebook-cpu.txt + dev.txt miss {sorted(missing)}: run make freeze"
    tools = frozen_pins(FROZEN["build-tools"])
    tool_names = [canonical(Requirement(r).name) for r in freeze_script().BUILD_TOOLS]
    assert set(tool_names) <= set(tools)
    missing = closure(list(freeze_script().BUILD_TOOLS)) - set(tools)
    assert not missing, f"build-tools.txt misses {sorted(missing)}: run make freeze"
    for line in freeze_script().BUILD_TOOLS:
        req = Requirement(line)
        assert req.specifier.contains(tools[canonical(req.name)]), f"build-tools.txt must satisfy {line}"


def test_the_venv_was_installed_from_the_current_lock() -> None:
    """scripts/setup-venv.sh leaves a stamp: the sha256 of each lock file it installed from (sha256sum's format)."""
    if not STAMP.exists():
        pytest.fail(f"{STAMP} is missing: this venv was not installed from the lock; run make setup")
    stamped = {}
    for line in STAMP.read_text().splitlines():
        digest, _, path = line.partition("  ")
        stamped[path] = digest
    lock_paths = {f"images/requirements/{kind}.txt" for kind in freeze_script().VENV_LOCK}
    assert lock_paths <= set(stamped), f"the stamp lists {sorted(stamped)}"
    stale = [p for p, digest in stamped.items() if hashlib.sha256((ROOT / p).read_bytes()).hexdigest() != digest]
    assert not stale, f"{stale} changed since this venv was installed: run make setup"


def test_the_venv_holds_exactly_the_lock() -> None:
    installed = {canonical(d.metadata["Name"]): d.version for d in metadata.distributions()}
    lock = venv_lock()
    assert {n: (v, installed.get(n)) for n, v in lock.items() if installed.get(n) != v} == {}
    assert set(installed) - set(lock) == {"occam"}, "the venv holds packages the lock does not: run make setup"


def pip_commands(script: str) -> list[list[str]]:
    """Each ``pip install`` command of a shell script, as words (line continuations joined)."""
    text = script.replace("\\\n", " ")
    commands = []
    for line in text.splitlines():
        line = line.split(" #", 1)[0]
        if re.search(r"\bpip\b.*\binstall\b", line) and not line.lstrip().startswith("#"):
            commands.append(shlex.split(line.split("install", 1)[1]))
    return commands


def test_setup_installs_only_from_the_lock_without_resolving() -> None:
    """Every install in scripts/setup-venv.sh is --no-deps from a lock file or a locked pin: nothing is resolved."""
    commands = pip_commands(SETUP.read_text())
    assert len(commands) >= 4
    for words in commands:
        assert "--no-deps" in words, f"resolves at install time: pip install {' '.join(words)}"
        for word in words:
            assert not re.search(r"[<>~]=?|\*", word), f"an open range in setup: {word}"
    text = SETUP.read_text()
    for kind in freeze_script().VENV_LOCK:
        assert f"{kind}.txt" in text
    assert "--no-build-isolation" in text, "a build-isolated install would fetch setuptools/wheel from the index"


def test_chp_is_installed_from_its_npm_lock() -> None:
    import json

    folder = ROOT / "images" / "proxy"
    package = json.loads((folder / "package.json").read_text())
    lock = json.loads((folder / "package-lock.json").read_text())
    (version,) = package["dependencies"].values()
    assert re.fullmatch(r"\d+\.\d+\.\d+", version), "an exact version, not a range"
    assert lock["packages"]["node_modules/configurable-http-proxy"]["version"] == version
    assert all("integrity" in entry for name, entry in lock["packages"].items() if name), "every package pinned by hash"
    makefile = (ROOT / "Makefile").read_text()
    assert "npm ci" in makefile and "npm install" not in makefile
    # The proxy image installs the same lock, the same way (and in no other way).
    dockerfile = (folder / "Dockerfile").read_text()
    assert "npm ci" in dockerfile and "npm install" not in dockerfile
    assert "COPY images/proxy/package.json images/proxy/package-lock.json" in dockerfile
