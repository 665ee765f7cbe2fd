"""docs/spawner.md's generated parts (every OccamSpawner setting, the hub's ClusterRole) match the code."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("kubespawner", reason="the spawner needs the hub extra: pip install -e '.[hub]'")

from spawner.reference import main, render  # noqa: E402
from spawner.settings import OccamSettings  # noqa: E402
from spawner.spawner import OccamSpawner  # noqa: E402

DOC = Path(__file__).resolve().parents[2] / "docs" / "spawner.md"


def test_the_spawner_doc_is_up_to_date():
    assert main(["--check", str(DOC)]) == 0, "run: python -m spawner.reference docs/spawner.md"


def test_every_setting_is_documented_with_its_help():
    text = DOC.read_text()
    for name, trait in OccamSettings.class_own_traits(config=True).items():
        assert f"### `c.OccamSpawner.{name}`" in text
        assert trait.help and len(trait.help.split()) >= 8, f"{name} needs a help string that explains it"
        assert OccamSpawner.class_traits(config=True)[name] is trait  # configured as c.OccamSpawner.<name>
    # Settings live in spawner/settings.py only, so the generated reference lists every one.
    assert OccamSpawner.class_own_traits(config=True) == {}


def test_a_stale_or_unmarked_doc_is_caught(tmp_path: Path):
    stale = tmp_path / "spawner.md"
    stale.write_text(DOC.read_text().replace("check_node_fit", "old_name"))
    assert main(["--check", str(stale)]) == 1
    assert main([str(stale)]) == 0 and main(["--check", str(stale)]) == 0
    with pytest.raises(ValueError, match="has no generated section 'settings'"):
        render("# a doc without markers\n")
