"""The model store on disk (``occam.models.store``, ``occam.models.metadata``), without TensorFlow.

The model file is written by a plain function standing in for ``model.save`` (the store only needs a file at
the path it gives); ``tests/local/test_models.py`` publishes and loads real Keras models.
"""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from occam.errors import ModelError, ModelNotFoundError, ModelPermissionError
from occam.models import store
from occam.models.metadata import ModelList, ModelMetadata, share_value


@pytest.fixture(autouse=True)
def models_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "models"
    monkeypatch.setenv("OCCAM_MODELS_DIR", str(root))
    monkeypatch.setenv("JUPYTERHUB_USER", "alice")
    return root


def as_user(monkeypatch: pytest.MonkeyPatch, user: str) -> None:
    monkeypatch.setenv("JUPYTERHUB_USER", user)


def metadata(name: str = "cnn", share: str | list[str] | None = None, shape: list[int | None] | None = None):
    return ModelMetadata(
        name=name,
        owner=store.current_user(),
        version=0,
        input_shape=shape or [8, 8, 1],
        input_dtype="float32",
        labels=["a", "b"],
        metrics={"loss": 0.5},
        share=share,
    )


def write(path: Path, content: bytes = b"weights") -> None:
    path.write_bytes(content)


def publish(name: str = "cnn", share: str | list[str] | None = None, content: bytes = b"weights") -> ModelMetadata:
    return store.write_version(metadata(name, share), lambda p: write(p, content)).metadata


@pytest.mark.parametrize(
    ("ref", "owner", "name", "version"),
    [
        ("cnn", None, "cnn", None),
        ("cnn:3", None, "cnn", 3),
        ("bob/cnn", "bob", "cnn", None),
        ("a.b@uni.edu/digits-cnn_2:12", "a.b@uni.edu", "digits-cnn_2", 12),
    ],
)
def test_references_name_an_owner_a_model_and_a_version(ref, owner, name, version):
    parsed = store.parse_ref(ref)
    assert (parsed.owner, parsed.name, parsed.version) == (owner, name, version)
    assert str(parsed) == ref


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("", "not understood"),
        ("a/b/c", "not understood"),
        ("cnn:", "whole number"),
        ("cnn:0", "whole number"),
        ("cnn:latest", "whole number"),
        ("../cnn", "cannot own models"),
        ("bob/.hidden", "not allowed"),
        ("my model", "not allowed"),
        (3, "not understood"),
    ],
)
def test_bad_references_are_refused_with_the_form_to_use(ref, message):
    with pytest.raises(ModelError, match=message):
        store.parse_ref(ref)


def test_the_models_root_is_a_setting(monkeypatch, tmp_path):
    assert store.models_root() == tmp_path / "models"
    monkeypatch.delenv("OCCAM_MODELS_DIR")
    assert store.models_root() == Path.home() / ".cache" / "occam" / "models"
    assert store.models_root(tmp_path / "elsewhere") == tmp_path / "elsewhere"


def test_each_publish_is_a_new_version_with_its_files(models_root):
    first, second = publish(content=b"one"), publish(content=b"two")
    assert (first.version, second.version) == (1, 2)
    assert first.ref == "alice/cnn:1"
    latest = store.resolve("cnn")
    assert latest.path == models_root / "alice" / "cnn" / "2"
    assert latest.model_path.read_bytes() == b"two"
    assert latest.metadata == second
    assert store.resolve("alice/cnn:1").model_path.read_bytes() == b"one"
    on_disk = ModelMetadata.from_json((latest.path / "metadata.json").read_text())
    assert on_disk == second and on_disk.metrics == {"loss": 0.5}


def test_unknown_names_and_versions_say_what_there_is():
    publish()
    with pytest.raises(ModelNotFoundError, match=r"no model alice/other .*occam.models.list\(\)"):
        store.resolve("other")
    with pytest.raises(ModelNotFoundError, match="no version 7 you may read; versions there: 1"):
        store.resolve("cnn:7")
    with pytest.raises(ModelNotFoundError, match="no model bob/cnn"):
        store.resolve("bob/cnn")


def test_a_failed_save_leaves_nothing_behind(models_root):
    def broken(path: Path) -> None:
        path.write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        store.write_version(metadata(), broken)
    assert os.listdir(models_root / "alice" / "cnn") == []
    assert store.list_models() == []


def test_a_version_being_written_never_shows(models_root):
    saving, release = threading.Event(), threading.Event()
    seen: list[object] = []

    def slow(path: Path) -> None:
        path.write_bytes(b"partial")
        saving.set()
        assert release.wait(10)

    writer = threading.Thread(target=lambda: store.write_version(metadata(), slow))
    writer.start()
    assert saving.wait(10)
    seen.append(store.list_models())
    with pytest.raises(ModelNotFoundError):
        store.resolve("cnn")
    release.set()
    writer.join(10)
    assert seen == [[]]
    assert store.resolve("cnn").metadata.version == 1


def test_concurrent_publishes_get_distinct_versions():
    # Every writer finishes its model before any picks a number: they all race for version 1.
    writers = 6
    barrier = threading.Barrier(writers)
    results: list[int] = []

    def save(path: Path) -> None:
        path.write_bytes(b"w")
        barrier.wait(10)

    def run() -> None:
        results.append(store.write_version(metadata(), save).metadata.version)

    threads = [threading.Thread(target=run) for _ in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert sorted(results) == list(range(1, writers + 1))
    assert [m.version for m in store.list_models()] == list(range(1, writers + 1))
    assert all(store.resolve(f"cnn:{v}").metadata.version == v for v in results)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_versions_are_read_only_private_by_default_and_readable_by_all_when_shared(models_root):
    private = store.resolve(publish().ref)
    shared = store.resolve(publish("public", share="course").ref)
    assert mode(private.path) == 0o500
    assert mode(private.model_path) == mode(private.path / "metadata.json") == 0o400
    assert mode(shared.path) == 0o555
    assert mode(shared.model_path) == mode(shared.path / "metadata.json") == 0o444
    # Others may pass through the owner's and the name's folders to reach what is shared.
    assert mode(models_root / "alice") == mode(models_root / "alice" / "public") == 0o755
    assert shared.metadata.share == "course" and private.metadata.share is None


def test_shared_models_show_to_those_they_are_shared_with(monkeypatch):
    publish("secret")
    publish("for-course", share="course")
    publish("for-bob", share=["bob"])
    assert [m.name for m in store.list_models()] == ["for-bob", "for-course", "secret"]
    as_user(monkeypatch, "bob")
    publish("bobs")
    assert [m.ref for m in store.list_models()] == ["bob/bobs:1", "alice/for-bob:1", "alice/for-course:1"]
    assert store.resolve("alice/for-bob").metadata.owner == "alice"
    with pytest.raises(ModelNotFoundError, match="not shared with you: ask alice"):
        store.resolve("alice/secret")
    as_user(monkeypatch, "carol")
    assert [m.ref for m in store.list_models()] == ["alice/for-course:1"]
    with pytest.raises(ModelNotFoundError, match="no version 1 you may read"):
        store.resolve("alice/for-bob:1")


def test_latest_is_the_highest_version_the_reader_may_read(monkeypatch):
    publish(share="course")
    publish()
    as_user(monkeypatch, "bob")
    assert store.resolve("alice/cnn").metadata.version == 1


def test_remove_takes_one_version_or_all_and_only_your_own(monkeypatch, models_root):
    for _ in range(3):
        publish(share="course")
    assert [m.version for m in store.remove("cnn:3")] == [3]
    assert publish(share="course").version == 4, "a removed version's number names no other model"
    assert [m.version for m in store.remove("cnn:2")] == [2]
    assert store.versions(models_root / "alice" / "cnn") == [1, 4]
    with pytest.raises(ModelNotFoundError, match=r"no model cnn:2 \(its versions: 1, 4\)"):
        store.remove("cnn:2")
    as_user(monkeypatch, "bob")
    with pytest.raises(ModelPermissionError, match="only its owner may remove it"):
        store.remove("alice/cnn")
    with pytest.raises(ModelNotFoundError, match="you have no model cnn"):
        store.remove("cnn")
    as_user(monkeypatch, "alice")
    assert [m.version for m in store.remove("alice/cnn")] == [1, 4]
    assert not (models_root / "alice" / "cnn").exists()
    assert store.list_models() == []


def test_a_name_that_is_a_file_is_refused(models_root):
    (models_root / "alice").mkdir(parents=True)
    (models_root / "alice" / "cnn").write_text("not a model")
    with pytest.raises(ModelError, match="is not a folder: move it away"):
        publish()


@pytest.mark.skipif(os.getuid() != 0, reason="making a folder that belongs to another account needs root")
def test_a_folder_of_another_account_is_never_written_into(models_root):
    (models_root / "alice").mkdir(parents=True)
    os.chown(models_root / "alice", 12345, 12345)
    with pytest.raises(ModelPermissionError, match="belongs to another account"):
        publish()


def test_metadata_round_trips_and_broken_files_are_named():
    original = metadata(share=["bob"])
    assert ModelMetadata.from_json(original.to_json()) == original
    newer = original.to_json().replace('"name"', '"added_later": 1, "name"')
    assert ModelMetadata.from_json(newer) == original
    with pytest.raises(ModelError, match="x/metadata.json is not valid JSON"):
        ModelMetadata.from_json("{", source="x/metadata.json")
    with pytest.raises(ModelError, match="lacks a field"):
        ModelMetadata.from_json('{"name": "cnn"}')


@pytest.mark.parametrize("share", ["everyone", [], [""], 3])
def test_share_takes_course_or_user_names(share):
    with pytest.raises(ModelError, match="share="):
        share_value(share)
    assert share_value(("carol", "bob", "bob")) == ["bob", "carol"]


def test_the_list_is_an_escaped_table_in_a_notebook():
    rows = ModelList([metadata(name="<script>", share=["<b>"])])
    page = rows._repr_html_()
    assert "<script>" not in page and "&lt;script&gt;" in page and "&lt;b&gt;" in page
    assert "loss=0.5" in page
    assert "publish one" in ModelList()._repr_html_()
