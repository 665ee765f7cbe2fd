"""The admin guide's authenticator examples, read from docs/admin-guide.md, as the hub would load them.

Each ``yaml`` block of the guide's "Authentication" section that sets ``authenticator_class`` is taken
from the doc itself, so the doc cannot drift: the chart must render with it (its authenticator check
passes), and its ``jupyterhub.hub.config`` becomes a traitlets Config, as Z2JH's hub config applies
``hub.config``. JupyterHub resolves the class by its entry point name (``generic-oauth``, ``github``,
``ldapauthenticator``) in the packages the hub image installs (oauthenticator, jupyterhub-ldapauthenticator),
and the class is made with that config. No network: nothing logs in. Every key of the authenticator's
section must be a configurable setting of its class (traitlets would only warn about a misspelt one).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from typing import Any

import pytest
import yaml

from .rendering import ADMIN_DEFAULTS, REPO, by_kind, objects

GUIDE = REPO / "docs" / "admin-guide.md"
#: The classes the guide must show (the issue's list: a university's OIDC, GitHub, LDAP).
EXPECTED = {
    "generic-oauth": "GenericOAuthenticator",
    "github": "GitHubOAuthenticator",
    "ldapauthenticator": "LDAPAuthenticator",
}


def guide_examples(text: str) -> list[dict[str, Any]]:
    """The values of each ``yaml`` block of the "Authentication" section that sets an authenticator class."""
    section = text.split("\n## Authentication\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```yaml\n(.*?)```", section, re.DOTALL)
    examples = [yaml.safe_load(block) for block in blocks]
    return [e for e in examples if "authenticator_class" in str(e)]


EXAMPLES = guide_examples(GUIDE.read_text())
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def _hub_config(example: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = example["jupyterhub"]["hub"]["config"]
    return config


def test_the_guide_shows_oidc_github_and_ldap() -> None:
    shown = {
        _hub_config(e)["JupyterHub"]["authenticator_class"]: sorted(set(_hub_config(e)) - {"JupyterHub"})
        for e in EXAMPLES
    }
    assert shown == {name: [section] for name, section in EXPECTED.items()}


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: _hub_config(e)["JupyterHub"]["authenticator_class"])
def test_the_chart_renders_with_the_example(example: dict[str, Any]) -> None:
    # The example is an excerpt of an admin's values: the rest (the work volumes' StorageClass...) as everywhere.
    (config_map,) = by_kind(objects({**example, "occam": ADMIN_DEFAULTS["occam"]}), "ConfigMap")
    assert config_map["metadata"]["name"] == "occam-hub-config"


#: Loads each example's hub config as JupyterHub does and checks every setting of its authenticator section;
#: run by the dev venv's Python and by the hub image's (``podman run``), so it imports only what the hub has.
CHECK = r"""
import json, sys
from jupyterhub.app import JupyterHub
from traitlets.config import Config

for example, expected in json.load(sys.stdin):
    config = Config(example)
    cls = JupyterHub(config=config).authenticator_class
    assert cls.__name__ == expected, (cls.__name__, expected)
    section = example[expected]
    unknown = sorted(set(section) - set(cls.class_traits(config=True)))
    assert not unknown, f"not settings of {expected}: {unknown}"
    authenticator = cls(config=config)
    for key, value in section.items():
        loaded = getattr(authenticator, key)
        wanted = set(value) if isinstance(loaded, set) else value
        if key == "tls_strategy":
            loaded = loaded.name
        assert loaded == wanted, (expected, key, loaded, wanted)
    print("loaded", expected)
"""


def _check_input(examples: list[dict[str, Any]]) -> str:
    cases = [(_hub_config(e), EXPECTED[_hub_config(e)["JupyterHub"]["authenticator_class"]]) for e in examples]
    return json.dumps(cases)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: _hub_config(e)["JupyterHub"]["authenticator_class"])
def test_the_example_loads_in_the_dev_venv(example: dict[str, Any]) -> None:
    pytest.importorskip("jupyterhub", reason="the hub tier needs jupyterhub (the dev extra)")
    name = _hub_config(example)["JupyterHub"]["authenticator_class"]
    package = "ldapauthenticator" if name == "ldapauthenticator" else "oauthenticator"
    pytest.importorskip(package, reason=f"{package} is in the hub image's lock (images/requirements/hub.txt)")
    done = subprocess.run(
        [sys.executable, "-c", CHECK], input=_check_input([example]), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]


def _ulimits() -> list[str]:
    """This machine's hard limits for the container: podman's defaults (nofile 1048576, nproc) exceed what a container
    may set here (as scripts/build-images.sh does for its RUN steps)."""
    import resource

    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nofile = 1048576 if nofile == resource.RLIM_INFINITY else nofile
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    nproc = 32768 if nproc == resource.RLIM_INFINITY else min(nproc, 32768)
    return ["--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", f"nproc={nproc}:{nproc}"]


def test_every_example_loads_in_the_hub_image() -> None:
    """The examples in the Python of the hub image `make images` built (podman), as the chart's hub runs them."""
    ref = f"localhost/occam-hub:{VERSION}"
    if shutil.which("podman") is None or os.geteuid() != 0:
        pytest.skip("needs root and podman (scripts/system-packages.sh) to run the hub image")
    if subprocess.run(["podman", "image", "exists", ref], timeout=60).returncode != 0:
        pytest.skip(f"{ref} has not been built: make images")
    done = subprocess.run(
        ["podman", "--runtime", "runc", "run", "--rm", "-i", "--network", "none", *_ulimits(), "--entrypoint",
         "python", ref, "-c", CHECK],
        input=_check_input(EXAMPLES), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    names = [EXPECTED[_hub_config(e)["JupyterHub"]["authenticator_class"]] for e in EXAMPLES]
    assert done.stdout.splitlines() == [f"loaded {name}" for name in names]
