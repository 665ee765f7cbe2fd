"""The course catalog's files (``occam.models.catalog``): what the catalog service writes, and what it refuses.

Real tar archives, real folders; the HTTP service with a real JupyterHub is tests/hub/test_model_catalog.py.
The model file is plain bytes standing in for ``model.save`` (the catalog only copies files).
"""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from occam import models
from occam.errors import ModelError, ModelExistsError, ModelNotFoundError, ModelPermissionError
from occam.models import catalog, catalog_client, store
from occam.models.catalog import ArchiveError, CatalogReply
from occam.models.metadata import ModelMetadata

MiB = 1024 * 1024


@pytest.fixture(autouse=True)
def users(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OCCAM_MODELS_DIR", str(tmp_path / "alice-store"))
    monkeypatch.setenv("JUPYTERHUB_USER", "alice")
    for name in ("OCCAM_CATALOG_URL", "OCCAM_CATALOG_DIR", "JUPYTERHUB_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "catalog"
    path.mkdir()
    return path


def published(name: str = "cnn", share: str | list[str] | None = "course", content: bytes = b"weights") -> Path:
    """A version in alice's own store, as publish writes it."""
    metadata = ModelMetadata(name=name, owner="alice", version=0, input_shape=[4], input_dtype="float32", share=share)
    return store.write_version(metadata, lambda path: path.write_bytes(content)).path


def archive(files: dict[str, bytes], *, extra: list[tarfile.TarInfo] | None = None) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
        for info in extra or []:
            tar.addfile(info)
    buffer.seek(0)
    return buffer


def add(root: Path, body: io.BytesIO | bytes, *, caller: str = "alice", owner: str = "alice", version: int = 1):
    data = io.BytesIO(body) if isinstance(body, bytes) else body
    return catalog.add_version(root, caller, owner, "cnn", version, data, max_bytes=MiB)


def test_a_packed_version_goes_into_the_catalog_readable_by_all_and_writable_by_none(root: Path) -> None:
    metadata = add(root, catalog.pack_version(published()))
    assert metadata.ref == "alice/cnn:1" and metadata.share == "course"
    version = root / "alice" / "cnn" / "1"
    assert (version / "model.keras").read_bytes() == b"weights"
    assert sorted(os.listdir(version)) == ["metadata.json", "model.keras"]
    assert oct(version.stat().st_mode & 0o777) == oct(catalog.DIR_MODE)
    assert {oct((version / f).stat().st_mode & 0o777) for f in os.listdir(version)} == {oct(catalog.FILE_MODE)}
    assert [n for n in os.listdir(version.parent) if not n.isdigit()] == [], "no staging folder left"
    # what a student's notebook reads from the read-only mount: the store's own reader, with the share list
    assert [m.ref for m in store.list_models(root=root, user="bob")] == ["alice/cnn:1"]


def test_an_existing_version_is_never_replaced(root: Path) -> None:
    first = published(content=b"first")
    add(root, catalog.pack_version(first))
    other = archive({"model.keras": b"second", "metadata.json": (first / "metadata.json").read_bytes()})
    with pytest.raises(ModelExistsError, match="already in the course catalog"):
        add(root, other)
    assert (root / "alice" / "cnn" / "1" / "model.keras").read_bytes() == b"first"


def test_nobody_adds_under_another_name(root: Path) -> None:
    body = catalog.pack_version(published())
    with pytest.raises(ModelPermissionError, match="you are bob"):
        add(root, body, caller="bob", owner="alice")
    assert not (root / "alice").exists()
    # bob under his own name, with alice's metadata inside: refused too
    with pytest.raises(ModelPermissionError, match="describes alice/cnn:1"):
        add(root, body, caller="bob", owner="bob")
    assert os.listdir(root / "bob" / "cnn") == []


def test_the_metadata_must_be_the_version_named(root: Path) -> None:
    with pytest.raises(ModelPermissionError, match="not alice/cnn:2"):
        add(root, catalog.pack_version(published()), version=2)


def test_a_private_version_stays_out(root: Path) -> None:
    with pytest.raises(ModelError, match="private"):
        add(root, catalog.pack_version(published(share=None)))
    assert not (root / "alice" / "cnn" / "1").exists()


@pytest.mark.parametrize("name", ["../escape", "/etc/evil", "sub/model.keras", ".hidden", "..", ""])
def test_paths_in_the_archive_are_refused(root: Path, name: str) -> None:
    with pytest.raises(ArchiveError, match="plain names"):
        add(root, archive({"model.keras": b"w", name: b"x"}))
    assert not (root.parent / "escape").exists() and os.listdir(root / "alice" / "cnn") == []


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.DIRTYPE, tarfile.FIFOTYPE])
def test_links_folders_and_special_files_are_refused(root: Path, kind: bytes) -> None:
    member = tarfile.TarInfo("metadata.json")
    member.type = kind
    member.linkname = "/etc/passwd"
    with pytest.raises(ArchiveError, match="plain files only"):
        add(root, archive({"model.keras": b"w"}, extra=[member]))
    assert os.listdir(root / "alice" / "cnn") == []


def test_a_name_twice_is_refused(root: Path) -> None:
    with pytest.raises(ArchiveError, match="each once"):
        add(root, archive({"model.keras": b"w", "metadata.json": b"{}"}, extra=[tarfile.TarInfo("model.keras")]))


def test_the_size_cap_counts_unpacked_bytes(root: Path) -> None:
    big = published(content=b"\0" * (2 * MiB))  # compresses to a few KiB: the cap is on what it unpacks to
    body = catalog.pack_version(big)
    assert len(body) < MiB
    with pytest.raises(ArchiveError, match="limit"):
        add(root, body)
    assert os.listdir(root / "alice" / "cnn") == []


def test_too_many_files_and_not_an_archive(root: Path) -> None:
    with pytest.raises(ArchiveError, match="more than 16 files"):
        add(root, archive({f"f{i}": b"" for i in range(17)}))
    with pytest.raises(ArchiveError, match="not a tar archive"):
        add(root, b"PK\x03\x04 not a tar")
    with pytest.raises(ArchiveError, match=r"must hold model\.keras and metadata\.json"):
        add(root, archive({"model.keras": b"w"}))


def test_names_in_the_request_are_checked(root: Path) -> None:
    body = catalog.pack_version(published())
    for owner, name in (("..", "cnn"), ("alice", ".."), ("alice", "a/b")):
        with pytest.raises(ModelError):
            catalog.add_version(root, owner, owner, name, 1, io.BytesIO(body), max_bytes=MiB)
    with pytest.raises(ModelError, match="whole number"):
        add(root, body, version=0)
    assert sorted(os.listdir(root)) in ([], ["alice"])


def test_only_the_owner_removes_a_version(root: Path) -> None:
    add(root, catalog.pack_version(published()))
    with pytest.raises(ModelPermissionError, match="only its owner"):
        catalog.remove_version(root, "bob", "alice", "cnn", 1)
    assert (root / "alice" / "cnn" / "1" / "model.keras").exists()
    assert catalog.remove_version(root, "alice", "alice", "cnn", 1).ref == "alice/cnn:1"  # type: ignore[union-attr]
    assert not (root / "alice" / "cnn").exists()
    with pytest.raises(ModelNotFoundError, match="not in the course catalog"):
        catalog.remove_version(root, "alice", "alice", "cnn", 1)


def test_replies_map_errors_to_statuses() -> None:
    assert catalog.reply_for(ModelPermissionError("x")).status == 403
    assert catalog.reply_for(ModelExistsError("x")).status == 409
    assert catalog.reply_for(ModelNotFoundError("x")).status == 404
    assert catalog.reply_for(ArchiveError("x")).status == 400
    reply = CatalogReply(201, "ok", "alice/cnn:1")
    assert CatalogReply.from_json(reply.to_json(), 500) == reply
    assert CatalogReply.from_json(b"<html>Bad Gateway</html>", 502) == CatalogReply(502, "<html>Bad Gateway</html>")


@pytest.mark.parametrize(
    ("status", "error", "message"),
    [
        (401, ModelPermissionError, "JUPYTERHUB_API_TOKEN your current token"),
        (403, ModelPermissionError, "refused to add alice/cnn:1: no"),
        (409, ModelExistsError, "publish again for a new version"),
        (413, ModelError, "refused"),
        (503, catalog_client.CatalogError, "not answering .*occam-catalog pod"),
    ],
)
def test_refusals_become_errors_naming_the_fix(status: int, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        catalog_client._raise_for(CatalogReply(status, "no"), "add alice/cnn:1")


def test_list_info_and_load_paths_see_the_catalog_mount(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What bob's notebook sees: his own store (empty) and the read-only catalog, with share lists applied."""
    add(root, catalog.pack_version(published("cnn", share="course")))
    catalog.add_version(
        root, "alice", "alice", "mlp", 1, io.BytesIO(catalog.pack_version(published("mlp", ["carol"]))), max_bytes=MiB
    )
    monkeypatch.setenv("OCCAM_CATALOG_DIR", str(root))
    monkeypatch.setenv("OCCAM_MODELS_DIR", str(tmp_path / "bob-store"))
    monkeypatch.setenv("JUPYTERHUB_USER", "bob")
    assert [m.ref for m in models.list()] == ["alice/cnn:1"]
    assert models.info("alice/cnn").ref == "alice/cnn:1"
    with pytest.raises(ModelNotFoundError, match="not shared with you.*course catalog"):
        models.info("alice/mlp")
    monkeypatch.setenv("JUPYTERHUB_USER", "carol")
    assert [m.ref for m in models.list()] == ["alice/cnn:1", "alice/mlp:1"]


def test_the_client_needs_a_token_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OCCAM_CATALOG_URL", "http://127.0.0.1:9/services/occam-catalog")
    assert catalog_client.catalog_url() == "http://127.0.0.1:9/services/occam-catalog/"
    with pytest.raises(ModelError, match="JUPYTERHUB_API_TOKEN is not set"):
        catalog_client.remove("alice", "cnn", 1)


def test_an_unreachable_catalog_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OCCAM_CATALOG_URL", "http://127.0.0.1:9/services/occam-catalog/")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "secret-token-value")
    monkeypatch.setenv("OCCAM_CATALOG_TIMEOUT", "5")
    with pytest.raises(ModelError, match="did not answer") as error:
        catalog_client.remove("alice", "cnn", 1)
    assert "secret-token-value" not in str(error.value)
