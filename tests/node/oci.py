"""OCI image layouts written directly: uncompressed tar layers, a config, a manifest and an index.

Layers stay uncompressed (``application/vnd.oci.image.layer.v1.tar``): containerd accepts them, and
the gigabytes of the executor image are then hashed once instead of gzipped on two shared cores. A
layer's digest is then also its diff ID. Blobs are hard links to the cached layer tars, so a layout
costs no copy; :func:`import_layout` streams it into containerd with ``ctr images import``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def tar_directory(root: Path, out: Path) -> Path:
    """A layer holding everything under ``root`` (as ``/``), owners kept numerically (GNU tar, as root)."""
    partial = out.with_suffix(".partial")
    subprocess.run(
        ["tar", "--numeric-owner", "--xattrs", "-C", str(root), "-cf", str(partial), "."],
        check=True,
    )
    partial.rename(out)
    return out


def tar_paths(
    entries: Iterable[tuple[Path, str]],
    out: Path,
    *,
    adjust: Callable[[tarfile.TarInfo], tarfile.TarInfo] | None = None,
) -> Path:
    """A layer of host files placed at image paths: ``(source, path in the image)`` pairs, no recursion.

    Parent directories of every path are added first, copied from the host's (same path) when they
    exist there, else as root-owned 0755 directories. ``adjust`` may edit each member (mode, owner).
    """
    partial = out.with_suffix(".partial")
    seen: set[str] = set()
    with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:

        def add(source: Path, name: str) -> None:
            name = name.strip("/")
            if not name or name in seen:
                return
            parent = os.path.dirname(name)
            if parent:
                add(Path("/", parent), parent)
            seen.add(name)
            if source.exists() or source.is_symlink():
                info = tar.gettarinfo(str(source), arcname=name)
            else:
                info = tarfile.TarInfo(name)
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            info.uname = info.gname = ""
            if adjust is not None:
                info = adjust(info)
            if info.isreg():
                with open(source, "rb") as fh:
                    tar.addfile(info, fh)
            else:
                tar.addfile(info)

        for source, name in entries:
            add(source, name)
    partial.rename(out)
    return out


def write_layout(
    layout: Path, ref: str, layers: list[Path], config: dict[str, Any], history: list[str] | None = None
) -> Path:
    """Write an OCI layout for image ``ref`` (``registry/name:tag``) from layer tars and a runtime config.

    ``config`` is the image's ``config`` section (``Entrypoint``, ``Env``, ``User``, ...).
    """
    if layout.exists():
        shutil.rmtree(layout)
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    layer_descriptors = []
    for layer in layers:
        digest = sha256_file(layer)
        target = blobs / digest
        if not target.exists():
            try:
                os.link(layer, target)
            except OSError:
                shutil.copyfile(layer, target)
        layer_descriptors.append({"mediaType": LAYER_TYPE, "digest": f"sha256:{digest}", "size": layer.stat().st_size})

    def blob(data: dict[str, Any], media_type: str) -> dict[str, Any]:
        raw = json.dumps(data, sort_keys=True).encode()
        digest = hashlib.sha256(raw).hexdigest()
        (blobs / digest).write_bytes(raw)
        return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(raw)}

    image_config = {
        "architecture": "amd64",
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [d["digest"] for d in layer_descriptors]},
        "history": [{"created_by": h} for h in (history or [])],
    }
    manifest = blob(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": blob(image_config, CONFIG_TYPE),
            "layers": layer_descriptors,
        },
        MANIFEST_TYPE,
    )
    manifest["annotations"] = {
        "io.containerd.image.name": ref,
        "org.opencontainers.image.ref.name": ref.rpartition(":")[2],
    }
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [manifest]}))
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    return layout


def import_layout(ctr: list[str], layout: Path, timeout: float = 900) -> None:
    """Stream ``layout`` into containerd's ``k8s.io`` namespace and unpack it (``ctr`` = the command prefix)."""
    tar = subprocess.Popen(["tar", "-C", str(layout), "-cf", "-", "."], stdout=subprocess.PIPE)
    try:
        result = subprocess.run(
            [*ctr, "-n", "k8s.io", "images", "import", "-"],
            stdin=tar.stdout,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    finally:
        assert tar.stdout is not None
        tar.stdout.close()
        tar.wait(timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"`ctr images import` of {layout} failed: {result.stderr.strip() or result.stdout.strip()}")
