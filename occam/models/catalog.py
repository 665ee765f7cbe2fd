"""The course catalog of shared models: what the catalog service writes, and the messages it answers with.

On Kubernetes a shared model must be readable by other students while no student can write where another
reads (docs/models.md, "Who may read and write (Kubernetes)"). The catalog is a filesystem with the store's
layout, ``<catalog>/<owner>/<name>/<version>/``, mounted read-only into every student's notebook; only the
catalog service (:mod:`occam.models.catalog_service`) writes into it, for the user the hub says is asking.

This module is the part of that service with no HTTP in it, so that its safety is tested without one:

- :func:`pack_version` makes the archive a notebook uploads: a tar (gzip) of one published version's files.
- :func:`unpack_version` extracts one into a folder, refusing anything but plain files with plain names (no
  folders, links, devices, ``..`` or absolute paths), more than :data:`MAX_FILES` files, or more than
  ``max_bytes`` unpacked.
- :func:`add_version` unpacks an upload into a staging folder beside the versions, checks that its
  ``metadata.json`` is the caller's (owner, name, version, a share list) and renames it to its number in one
  step; a number that exists stays as it was (:class:`~occam.errors.ModelExistsError`).
- :func:`remove_version` removes one of the caller's versions, renamed away first.

Every check takes the caller's name as the hub gave it, never one from the request. Nothing here imports
TensorFlow or tornado.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import re
import shutil
import tarfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from occam.errors import ModelError, ModelExistsError, ModelNotFoundError, ModelPermissionError
from occam.models import store
from occam.models.metadata import ModelMetadata, share_value

#: A file of a version: a plain name (``model.keras``, ``metadata.json``), never a path.
FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
#: The most files one version's archive may hold (a version has two today).
MAX_FILES = 16
#: Modes in the catalog: everyone reads, nobody but the service (which removes through chmod) writes.
DIR_MODE, FILE_MODE, PARENT_MODE = 0o555, 0o444, 0o755
_CHUNK = 1024 * 1024


class ArchiveError(ModelError):
    """An upload that is not a version's archive as :func:`pack_version` makes it; the message says why."""


@dataclass(frozen=True)
class CatalogReply:
    """What the catalog service answers, as JSON: ``status`` (the HTTP status), a ``message`` for the student,
    and the version's ``ref`` (``owner/name:version``) when the request named one."""

    status: int
    message: str
    ref: str | None = None

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes, status: int) -> CatalogReply:
        """Parse an answer; a body that is not one (a proxy's error page) keeps ``status`` and its first line."""
        try:
            raw = json.loads(text)
            return cls(status=int(raw["status"]), message=str(raw["message"]), ref=raw.get("ref"))
        except (ValueError, TypeError, KeyError):
            shown = (text.decode(errors="replace") if isinstance(text, bytes) else text).strip().splitlines()
            return cls(status=status, message=shown[0][:300] if shown else f"HTTP {status} with no body")


def pack_version(version_dir: Path) -> bytes:
    """A gzip tar of the plain files of one published version (``model.keras``, ``metadata.json``)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path in sorted(version_dir.iterdir()):
            if path.is_file() and not path.is_symlink() and FILE_NAME.fullmatch(path.name):
                info = archive.gettarinfo(str(path), arcname=path.name)
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                with open(path, "rb") as source:
                    archive.addfile(info, source)
    return buffer.getvalue()


def _copy_capped(source: IO[bytes], target: IO[bytes], budget: int, name: str) -> int:
    copied = 0
    while chunk := source.read(_CHUNK):
        copied += len(chunk)
        if copied > budget:
            raise ArchiveError(
                f"the upload unpacks to more than the catalog's limit (at {name}); share a smaller model"
            )
        target.write(chunk)
    return copied


def unpack_version(archive: IO[bytes], into: Path, *, max_bytes: int) -> list[str]:
    """Extract ``archive`` (tar, plain or gzip) into the existing, empty folder ``into``; return the file names.

    Refused (:class:`ArchiveError`, nothing left but what ``into`` holds, which the caller removes): anything
    that is not a plain file (folders, symbolic and hard links, devices, FIFOs), a name that is not one plain
    component (``../x``, ``/etc/x``, ``a/b``, ``.hidden``), a name twice, more than :data:`MAX_FILES` files,
    and more than ``max_bytes`` unpacked in all (counted as it is written, whatever the headers claim).
    """
    names: list[str] = []
    left = max_bytes
    try:
        opened = tarfile.open(fileobj=archive, mode="r:*")  # noqa: SIM115 - closed by the with below
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ArchiveError(f"the upload is not a tar archive ({exc}); occam.models.publish makes it") from None
    with opened:
        try:
            for member in opened:
                if not member.isreg():
                    kind = (
                        "link" if member.issym() or member.islnk() else "folder" if member.isdir() else "special file"
                    )
                    raise ArchiveError(f"the upload holds {member.name!r}, a {kind}: a version holds plain files only")
                if not FILE_NAME.fullmatch(member.name) or member.name in names:
                    raise ArchiveError(
                        f"the upload holds the file name {member.name!r}: a version's files have plain names, each "
                        "once, and no paths"
                    )
                if len(names) == MAX_FILES:
                    raise ArchiveError(f"the upload holds more than {MAX_FILES} files; a version has two")
                if member.size > left:
                    raise ArchiveError(
                        f"the upload unpacks to more than the catalog's limit of {max_bytes} bytes (at "
                        f"{member.name}); share a smaller model, or ask the course admin"
                    )
                source = opened.extractfile(member)
                assert source is not None  # a regular file always has one
                # O_EXCL | O_NOFOLLOW: never through a link, never over a file, whatever is in the folder.
                fd = os.open(into / member.name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
                with os.fdopen(fd, "wb") as target:
                    left -= _copy_capped(source, target, left, member.name)
                    target.flush()
                    os.fsync(target.fileno())
                names.append(member.name)
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise ArchiveError(f"the upload is a broken tar archive ({exc}); publish again") from None
    return names


def _checked_metadata(staging: Path, owner: str, name: str, version: int) -> ModelMetadata:
    """The upload's metadata, which must describe exactly the version the caller said, owned by the caller."""
    if not (staging / store.MODEL_FILE).is_file() or not (staging / store.METADATA_FILE).is_file():
        raise ArchiveError(f"the upload must hold {store.MODEL_FILE} and {store.METADATA_FILE}, as a published version")
    metadata = ModelMetadata.from_json((staging / store.METADATA_FILE).read_text(), source="the upload's metadata")
    if (metadata.owner, metadata.name, metadata.version) != (owner, name, version):
        raise ModelPermissionError(
            f"the upload's metadata describes {metadata.ref}, not {owner}/{name}:{version}: the catalog takes only "
            "your own versions, under your own name"
        )
    share = share_value(metadata.share)
    if not share:
        raise ModelError(f"{metadata.ref} is private (share=None): only shared versions go into the course catalog")
    return metadata


def _service_dir(path: Path) -> Path:
    """``path`` as a folder of the catalog (made if missing, readable and passable by everyone), never a link."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, PARENT_MODE)
        os.chmod(path, PARENT_MODE)
    if path.is_symlink() or not path.is_dir():
        raise ModelError(f"{path} in the catalog is not a folder: the course admin must remove it")
    return path


def version_dir(catalog: Path, owner: str, name: str, version: int) -> Path:
    """Where ``owner/name:version`` lives in ``catalog``, each part checked (no ``..``, no separators)."""
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ModelError(f"version {version!r} must be a whole number from 1")
    return catalog / store.check_owner(owner) / store.check_name(name) / str(version)


def add_version(
    catalog: Path, caller: str, owner: str, name: str, version: int, archive: IO[bytes], *, max_bytes: int
) -> ModelMetadata:
    """Put the uploaded ``archive`` into ``catalog`` as ``owner/name:version`` for ``caller`` (the hub's user).

    Refused: another user's folder (:class:`~occam.errors.ModelPermissionError`), an archive that is not a
    version's (:class:`ArchiveError`), metadata that is not that version's or not shared, and a version that
    exists (:class:`~occam.errors.ModelExistsError`: versions never change). Atomic: readers see all or nothing.
    """
    if caller != owner:
        raise ModelPermissionError(
            f"you are {caller}: the catalog takes versions under your own name only, not under {owner}'s"
        )
    final = version_dir(catalog, owner, name, version)
    name_dir = _service_dir(_service_dir(catalog / owner) / name)
    if final.exists():
        raise ModelExistsError(f"{owner}/{name}:{version} is already in the course catalog; versions never change")
    staging = name_dir / f"{store.STAGING_PREFIX}{uuid.uuid4().hex}"
    staging.mkdir(mode=0o700)
    try:
        files = unpack_version(archive, staging, max_bytes=max_bytes)
        metadata = _checked_metadata(staging, owner, name, version)
        for file in files:
            os.chmod(staging / file, FILE_MODE)
        os.chmod(staging, DIR_MODE)
        try:
            os.rename(staging, final)  # fails if the number appeared meanwhile: never replaced
        except OSError as exc:
            if final.exists():
                raise ModelExistsError(
                    f"{owner}/{name}:{version} is already in the course catalog; versions never change"
                ) from exc
            raise
    except BaseException:
        _delete_tree(staging)
        raise
    return metadata


def remove_version(catalog: Path, caller: str, owner: str, name: str, version: int) -> ModelMetadata | None:
    """Remove ``owner/name:version`` from ``catalog`` for ``caller``: their own only. Returns its metadata."""
    if caller != owner:
        raise ModelPermissionError(
            f"{owner}/{name}:{version} is {owner}'s: only its owner may remove it from the catalog (you are {caller})"
        )
    target = version_dir(catalog, owner, name, version)
    if target.is_symlink() or not target.is_dir():
        raise ModelNotFoundError(f"{owner}/{name}:{version} is not in the course catalog")
    metadata = store.read_metadata(target)
    doomed = target.parent / f"{store.REMOVING_PREFIX}{uuid.uuid4().hex}"
    os.rename(target, doomed)  # gone for readers in one step
    _delete_tree(doomed)
    with contextlib.suppress(OSError):
        target.parent.rmdir()  # the model's last version: its folder goes too
    return metadata


def _delete_tree(path: Path) -> None:
    if not path.exists():
        return
    for folder, _, _ in os.walk(path):
        os.chmod(folder, 0o700)
    shutil.rmtree(path)


def reply_for(error: BaseException) -> CatalogReply:
    """The answer to a refused request: 403 for another's model, 409 for an existing version, 404, else 400."""
    status = (
        403
        if isinstance(error, ModelPermissionError)
        else 409
        if isinstance(error, ModelExistsError)
        else 404
        if isinstance(error, ModelNotFoundError)
        else 400
    )
    return CatalogReply(status=status, message=str(error))
