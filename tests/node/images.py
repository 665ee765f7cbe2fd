"""The real node's images: the notebook image admins deploy, built by podman, and two small test images.

Usage: ``python -m tests.node.images`` finds (or builds) them all and prints their references and sizes.

* ``notebook``: ``images/notebook/Dockerfile`` (VARIANT=cpu) built by ``scripts/build-images.sh`` (``make
  images``) with podman from the local stand-in of its base; that script saves it as an OCI archive in
  ``~/.cache/occam/images/exports`` (``OCCAM_IMAGE_CACHE``), which is what the node imports. It is the image of
  the notebook pod, the executor pods and batch-job drivers, unchanged: drivers that the tests run on this
  machine see their venv at the image's venv path (:mod:`.driverproc`), so the executors' Python, which Spark
  takes from the driver's ``sys.executable``, is the image's own.
* ``pause``: the pod sandbox (``tests/node/pause.c``, compiled static here) under the name containerd's CRI
  looks for, :data:`PAUSE_REF`;
* ``busybox``: this machine's ``busybox-static``, for the node's own tests;
* ``hub`` and ``proxy``, where ``scripts/build-images.sh`` has exported them (``make images``): the hub image
  (``images/hub/Dockerfile``) and the proxy image (``images/proxy/Dockerfile``) that Zero to JupyterHub's hub
  and proxy pods run in the release test (tests/node/test_release_on_node.py, which skips without them).

The two small ones are imported into podman from a directory (``podman import``) and saved the same way; each
build is keyed by its inputs, so a second run takes a second.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
RECIPE_VERSION = "2"  # bump to rebuild the small images

PAUSE_REF = "registry.k8s.io/pause:3.10"  # also the name containerd's CRI looks for as the sandbox image
#: Where images/notebook/Dockerfile puts the venv: the executors' Python is ``IMAGE_VENV/bin/python``.
IMAGE_VENV = "/opt/occam/venv"
NOTEBOOK_EXPORT = "occam-notebook"  # scripts/build-images.sh's archive name: exports/occam-notebook-<id>.tar
BUILD_COMMAND = "make images (scripts/build-images.sh notebook-cpu, as root)"
#: The release test's images, by role: scripts/build-images.sh's archive names.
RELEASE_EXPORTS = {"hub": "occam-hub", "proxy": "occam-proxy"}


class ImageBuildError(RuntimeError):
    pass


@dataclass(frozen=True)
class Image:
    """An image saved as an OCI archive: its reference, the archive, its manifest's digest and size."""

    ref: str
    archive: Path
    digest: str
    size_bytes: int


def cache_dir() -> Path:
    return Path(os.environ.get("OCCAM_IMAGE_CACHE") or Path.home() / ".cache" / "occam" / "images")


def content_key(*parts: str | bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part if isinstance(part, bytes) else part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def run(args: list[str], what: str, **kwargs: object) -> str:
    result = subprocess.run(args, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
        raise ImageBuildError(f"{what} failed (`{' '.join(map(str, args))}`, status {result.returncode}):\n{tail}")
    return str(result.stdout)


def archived(archive: Path) -> Image:
    """The image an OCI archive holds (one manifest, named by ``org.opencontainers.image.ref.name``)."""
    with tarfile.open(archive) as tar:
        member = tar.extractfile("index.json")
        if member is None:
            raise ImageBuildError(f"{archive} holds no index.json: not an OCI archive")
        [manifest] = json.load(member)["manifests"]
        size = sum(m.size for m in tar.getmembers() if m.isfile())
    return Image(manifest["annotations"]["org.opencontainers.image.ref.name"], archive, manifest["digest"], size)


def exported_image(cache: Path, name: str) -> Image | None:
    """The image scripts/build-images.sh saved last as ``exports/<name>-<id>.tar`` (it keeps one), or None."""
    archives = sorted((cache / "exports").glob(f"{name}-*.tar"), key=lambda p: p.stat().st_mtime)
    return archived(archives[-1]) if archives else None


def notebook_image(cache: Path) -> Image:
    """The notebook image scripts/build-images.sh saved last (it keeps one archive, named by the image's id)."""
    image = exported_image(cache, NOTEBOOK_EXPORT)
    if image is None:
        raise ImageBuildError(f"no notebook image in {cache / 'exports'}: build it with `{BUILD_COMMAND}`")
    return image


def release_images(cache: Path) -> dict[str, Image]:
    """The hub and proxy images scripts/build-images.sh exported (``make images``), those that are there."""
    found = {role: exported_image(cache, export) for role, export in RELEASE_EXPORTS.items()}
    return {role: image for role, image in found.items() if image is not None}


def _podman_image(cache: Path, name: str, ref: str, root: Path, key: str, changes: list[str]) -> Image:
    """``root`` as a one-layer image ``ref`` (podman import), saved as an OCI archive named by ``key``."""
    archive = cache / "exports" / f"{name}-{key}.tar"
    if not archive.exists():
        archive.parent.mkdir(parents=True, exist_ok=True)
        with subprocess.Popen(
            ["tar", "--numeric-owner", "-C", str(root), "-cf", "-", "."], stdout=subprocess.PIPE
        ) as tar:
            flags = [f"--change={change}" for change in changes]
            run(["podman", "import", *flags, "-", ref], f"podman import of {ref}", stdin=tar.stdout)
        partial = archive.with_suffix(".partial")
        run(["podman", "save", "--format", "oci-archive", "--uncompressed", "-o", str(partial), ref], f"saving {ref}")
        partial.rename(archive)
        for old in archive.parent.glob(f"{name}-*.tar"):
            if old != archive:
                old.unlink()
    return archived(archive)


def build_pause(cache: Path) -> Image:
    source = HERE / "pause.c"
    key = content_key("pause", RECIPE_VERSION, source.read_bytes())
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        root = Path(tmp)
        if not (cache / "exports" / f"pause-{key}.tar").exists():
            run(["gcc", "-static", "-O2", "-o", str(root / "pause"), str(source)], "compiling the pause binary")
        changes = ['ENTRYPOINT ["/pause"]', "USER 65535:65535"]
        return _podman_image(cache, "pause", PAUSE_REF, root, key, changes)


def build_busybox(cache: Path) -> Image:
    busybox = Path(shutil.which("busybox") or "/bin/busybox")
    key = content_key("busybox", RECIPE_VERSION, busybox.read_bytes())
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        root = Path(tmp)
        (root / "bin").mkdir()
        shutil.copy2(busybox, root / "bin" / "busybox")
        applets = run([str(busybox), "--list"], "listing busybox's applets").split()
        for applet in applets:
            if applet != "busybox":
                (root / "bin" / applet).symlink_to("busybox")
        changes = ['CMD ["sh"]', "ENV PATH=/bin"]
        return _podman_image(cache, "busybox", f"localhost/occam-busybox:{key[:12]}", root, key, changes)


def build_all(cache: Path | None = None) -> dict[str, Image]:
    """The node's images: ``{"pause": ..., "busybox": ..., "notebook": ...}`` (the notebook image must be built),
    and ``"hub"`` and ``"proxy"`` where they were built."""
    cache = cache or cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    if not shutil.which("podman"):
        raise ImageBuildError("podman is not installed: scripts/system-packages.sh (as root) installs it")
    images = {"pause": build_pause(cache), "busybox": build_busybox(cache), "notebook": notebook_image(cache)}
    return {**images, **release_images(cache)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=None, help="cache directory (default ~/.cache/occam/images)")
    args = parser.parse_args()
    for name, image in build_all(args.cache).items():
        print(f"{name:9} {image.ref}  {image.size_bytes / 2**20:,.0f} MiB  {image.digest[:19]}  {image.archive}")


if __name__ == "__main__":
    main()
