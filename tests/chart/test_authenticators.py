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

import re
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


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: _hub_config(e)["JupyterHub"]["authenticator_class"])
def test_the_example_loads_in_the_hub(example: dict[str, Any]) -> None:
    pytest.importorskip("jupyterhub", reason="the hub tier needs jupyterhub (the dev extra)")
    name = _hub_config(example)["JupyterHub"]["authenticator_class"]
    package = "ldapauthenticator" if name == "ldapauthenticator" else "oauthenticator"
    pytest.importorskip(package, reason=f"{package} is in the hub image's lock (images/requirements/hub.txt)")
    from jupyterhub.app import JupyterHub
    from traitlets.config import Config

    config = Config(_hub_config(example))
    authenticator_class = JupyterHub(config=config).authenticator_class
    assert authenticator_class.__name__ == EXPECTED[name]
    section = _hub_config(example)[EXPECTED[name]]
    settable = authenticator_class.class_traits(config=True)
    assert sorted(set(section) - set(settable)) == [], f"not settings of {authenticator_class.__name__}"
    authenticator = authenticator_class(config=config)
    for key, value in section.items():
        loaded = getattr(authenticator, key)
        expected = set(value) if isinstance(loaded, set) else value
        if key == "tls_strategy":
            loaded = loaded.name
        assert loaded == expected, key
