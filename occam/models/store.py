"""The model store on disk: ``<models root>/<owner>/<name>/<version>/`` holding ``model.keras`` and ``metadata.json``.

A version is immutable once it shows: it is written into a hidden staging folder beside the versions
(``.staging-*``, same filesystem), its files synced, then renamed to its number in one step, so a reader sees a
whole version or none. Two publishes that pick the same number race on that rename: the loser takes the next
number. Versions are removed the same way round (renamed to a hidden name, then deleted); a removed number
is never given again while the model has other versions (``.removed-<n>`` markers).

Access: private models are ``0500``/``0400`` (only the owner reads them; nobody writes them, not even the
owner's next publish); shared ones are ``0555``/``0444``. On one machine that is what keeps a private model
private; on Kubernetes the chart's volumes do (docs/models.md). Nothing here imports TensorFlow.
"""

from __future__ import annotations

import contextlib
import errno
import getpass
import os
import re
import shutil
import stat
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from occam import config
from occam.contract import JUPYTERHUB_USER_ENV
from occam.errors import ModelError, ModelNotFoundError, ModelPermissionError
from occam.models.metadata import ModelList, ModelMetadata

MODEL_FILE = "model.keras"
METADATA_FILE = "metadata.json"
STAGING_PREFIX = ".staging-"
REMOVING_PREFIX = ".removing-"
#: Left behind when one version is removed, so that its number is never given to another model.
REMOVED_PREFIX = ".removed-"

#: A model's name: letters, digits, ``.``, ``_``, ``-``; starts with a letter or digit; at most 100 characters.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
#: A user name as JupyterHub or the login allows it (``alice``, ``a.b@uni.edu``); never ``.`` or ``..``.
OWNER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._@+-]{0,99}")
#: ``name``, ``name:3``, ``owner/name``, ``owner/name:3``.
REF = re.compile(r"(?:(?P<owner>[^/:]+)/)?(?P<name>[^/:]+)(?::(?P<version>[^/:]*))?")

PRIVATE_DIR, PRIVATE_FILE = 0o500, 0o400
SHARED_DIR, SHARED_FILE = 0o555, 0o444
#: The owner's and a model name's folders: others may pass through and list, so shared versions are reachable.
PARENT_DIR = 0o755


@dataclass(frozen=True)
class Ref:
    """A parsed model reference. ``owner`` is ``None`` for "mine", ``version`` ``None`` for "the latest"."""

    owner: str | None
    name: str
    version: int | None

    def __str__(self) -> str:
        text = f"{self.owner}/{self.name}" if self.owner else self.name
        return text if self.version is None else f"{text}:{self.version}"


@dataclass(frozen=True)
class ModelEntry:
    """One published version: its folder, its model file and its metadata."""

    path: Path
    model_path: Path
    metadata: ModelMetadata


def models_root(override: str | os.PathLike[str] | None = None) -> Path:
    """The store's root: ``override``, else ``OCCAM_MODELS_DIR``, else ``~/.cache/occam/models``."""
    return Path(config.path("models_dir", override))


def current_user() -> str:
    """Who publishes: the JupyterHub user (``JUPYTERHUB_USER``), else the login name."""
    user = (os.environ.get(JUPYTERHUB_USER_ENV) or "").strip() or getpass.getuser()
    check_owner(user)
    return user


def check_name(name: object) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ModelError(
            f"model name {name!r} is not allowed: use letters, digits, '.', '_' and '-' (at most 100, starting "
            "with a letter or digit), e.g. 'digits-cnn'"
        )
    return name


def check_owner(owner: str) -> str:
    if not OWNER.fullmatch(owner):
        raise ModelError(
            f"user name {owner!r} cannot own models here: use letters, digits and '._@+-' (set JUPYTERHUB_USER)"
        )
    return owner


def parse_ref(ref: object) -> Ref:
    """Parse ``name``, ``name:3``, ``owner/name`` or ``owner/name:3``."""
    match = REF.fullmatch(ref) if isinstance(ref, str) else None
    if match is None:
        raise ModelError(
            f"model reference {ref!r} is not understood: write 'name', 'name:3', 'owner/name' or 'owner/name:3'"
        )
    owner, name, version = match.group("owner"), match.group("name"), match.group("version")
    if owner is not None:
        check_owner(owner)
    check_name(name)
    if version is not None and not (version.isdigit() and int(version) >= 1):
        raise ModelError(f"version {version!r} in {ref!r} must be a whole number from 1, e.g. '{owner or ''}{name}:1'")
    return Ref(owner, name, int(version) if version is not None else None)


def versions(name_dir: Path) -> list[int]:
    """The published versions in a model's folder, ascending (staging and removing folders are not versions)."""
    try:
        names = os.listdir(name_dir)
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return []
    return sorted(int(n) for n in names if n.isdigit())


def _next_version(name_dir: Path) -> int:
    """One more than any version there is or was (removed versions leave a marker): a number names one model."""
    removed = [int(n[len(REMOVED_PREFIX) :]) for n in os.listdir(name_dir) if n.startswith(REMOVED_PREFIX)]
    return max([*versions(name_dir), *removed], default=0) + 1


def read_metadata(version_dir: Path) -> ModelMetadata | None:
    """The version's metadata, or None if this user may not read it (a private model of someone else)."""
    try:
        text = (version_dir / METADATA_FILE).read_text()
    except (FileNotFoundError, PermissionError, NotADirectoryError):
        return None
    return ModelMetadata.from_json(text, source=str(version_dir / METADATA_FILE))


def _entry(version_dir: Path, metadata: ModelMetadata) -> ModelEntry:
    return ModelEntry(path=version_dir, model_path=version_dir / MODEL_FILE, metadata=metadata)


def _readable(version_dir: Path, user: str) -> ModelMetadata | None:
    metadata = read_metadata(version_dir)
    return metadata if metadata is not None and metadata.readable_by(user) else None


def resolve(ref: str, *, root: str | os.PathLike[str] | None = None) -> ModelEntry:
    """The version ``ref`` names: the highest one readable by this user when it names none."""
    parsed = parse_ref(ref)
    user = current_user()
    owner = parsed.owner or user
    name_dir = models_root(root) / owner / parsed.name
    found = versions(name_dir)
    whose = "your" if owner == user else f"{owner}'s"
    if not found:
        raise ModelNotFoundError(
            f"no model {owner}/{parsed.name} in {models_root(root)}: occam.models.list() shows the models you may "
            f"load; check the name{'' if parsed.owner else ', or write owner/name to load a model of another user'}"
        )
    if parsed.version is not None:
        metadata = _readable(name_dir / str(parsed.version), user) if parsed.version in found else None
        if metadata is None:
            shown = [v for v in found if _readable(name_dir / str(v), user) is not None]
            raise ModelNotFoundError(
                f"{whose} model {parsed.name} has no version {parsed.version} you may read; "
                f"versions there: {', '.join(map(str, shown)) or 'none you may read'}"
            )
        return _entry(name_dir / str(parsed.version), metadata)
    for version in reversed(found):
        metadata = _readable(name_dir / str(version), user)
        if metadata is not None:
            return _entry(name_dir / str(version), metadata)
    raise ModelNotFoundError(
        f"{owner}/{parsed.name} is not shared with you: ask {owner} to publish it with share='course' "
        f"or share=['{user}']"
    )


def list_models(*, root: str | os.PathLike[str] | None = None, user: str | None = None) -> ModelList:
    """Every version ``user`` (default: this user) may read: their own first, then the shared ones."""
    user = user or current_user()
    base = models_root(root)
    rows: list[ModelMetadata] = []
    try:
        owners = sorted(o for o in os.listdir(base) if OWNER.fullmatch(o))
    except (FileNotFoundError, PermissionError):
        return ModelList()
    for owner in sorted(owners, key=lambda o: (o != user, o)):
        try:
            names = sorted(n for n in os.listdir(base / owner) if NAME.fullmatch(n))
        except (NotADirectoryError, PermissionError):
            continue
        for name in names:
            for version in versions(base / owner / name):
                metadata = _readable(base / owner / name / str(version), user)
                if metadata is not None:
                    rows.append(metadata)
    return ModelList(rows)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _own_dir(path: Path) -> Path:
    """Create ``path`` (mode ``PARENT_DIR``) or check that it is this user's: never write into another's folder."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, PARENT_DIR)
        os.chmod(path, PARENT_DIR)  # mkdir's mode is cut by the umask
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode):
        raise ModelError(f"{path} is not a folder: move it away, or publish under another name")
    if info.st_uid != os.getuid():
        raise ModelPermissionError(
            f"{path} belongs to another account (uid {info.st_uid}): Occam publishes only into your own folder; "
            "ask the course admin to remove it, or set OCCAM_MODELS_DIR to a store of your own"
        )
    return path


def _write_metadata(staging: Path, metadata: ModelMetadata, file_mode: int) -> None:
    target = staging / METADATA_FILE
    temporary = staging / f".{METADATA_FILE}.tmp"
    with open(temporary, "w") as out:
        out.write(metadata.to_json())
        out.flush()
        os.fsync(out.fileno())
    os.chmod(temporary, file_mode)
    os.replace(temporary, target)


def write_version(
    metadata: ModelMetadata,
    save: Callable[[Path], None],
    *,
    root: str | os.PathLike[str] | None = None,
) -> ModelEntry:
    """Publish a new version of ``metadata.owner/metadata.name``: ``save(path)`` writes the model file at
    ``path``; the version number is the next free one (``metadata.version`` is ignored). Atomic: see the module."""
    base = models_root(root)
    base.mkdir(parents=True, exist_ok=True)
    name_dir = _own_dir(_own_dir(base / check_owner(metadata.owner)) / check_name(metadata.name))
    dir_mode, file_mode = (SHARED_DIR, SHARED_FILE) if metadata.shared else (PRIVATE_DIR, PRIVATE_FILE)
    staging = name_dir / f"{STAGING_PREFIX}{uuid.uuid4().hex}"
    staging.mkdir(mode=0o700)
    try:
        model_path = staging / MODEL_FILE
        save(model_path)
        if not model_path.is_file():
            raise ModelError(f"saving the model wrote no {MODEL_FILE}; publish a Keras model")
        _fsync(model_path)
        os.chmod(model_path, file_mode)
        while True:
            version = _next_version(name_dir)
            metadata = replace(metadata, version=version)
            _write_metadata(staging, metadata, file_mode)
            _fsync(staging)
            final = name_dir / str(version)
            try:
                os.rename(staging, final)
            except OSError as exc:
                if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                    continue  # another publish took this number first
                raise
            break
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    os.chmod(final, dir_mode)
    _fsync(name_dir)
    return _entry(final, metadata)


def remove(ref: str, *, root: str | os.PathLike[str] | None = None) -> list[ModelMetadata]:
    """Remove one version (``name:3``) or every version (``name``) of one of your own models."""
    parsed = parse_ref(ref)
    user = current_user()
    if parsed.owner not in (None, user):
        raise ModelPermissionError(
            f"{parsed.owner}/{parsed.name} is {parsed.owner}'s model: only its owner may remove it "
            f"(you are {user}); occam.models.remove takes your own models, by name"
        )
    name_dir = models_root(root) / user / parsed.name
    found = versions(name_dir)
    targets = found if parsed.version is None else [v for v in found if v == parsed.version]
    if not targets:
        raise ModelNotFoundError(
            f"you have no model {parsed}"
            + (f" (its versions: {', '.join(map(str, found))})" if found else "")
            + "; occam.models.list() shows yours"
        )
    removed = []
    for version in targets:
        metadata = read_metadata(name_dir / str(version))
        (name_dir / f"{REMOVED_PREFIX}{version}").touch()
        doomed = name_dir / f"{REMOVING_PREFIX}{uuid.uuid4().hex}"
        os.rename(name_dir / str(version), doomed)  # it disappears from readers in one step
        _delete_tree(doomed)
        if metadata is not None:
            removed.append(metadata)
    if not versions(name_dir):
        # The whole model is gone: its name (and its numbers, from 1) are free again.
        for leftover in os.listdir(name_dir):
            if leftover.startswith(REMOVED_PREFIX):
                (name_dir / leftover).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            name_dir.rmdir()
    return removed


def _delete_tree(path: Path) -> None:
    """``rmtree`` of a published version: its folders are read-only, so give them back write permission first."""
    for folder, _, _ in os.walk(path):
        os.chmod(folder, 0o700)
    shutil.rmtree(path)
