"""The real node's images, built on this machine (nothing can be pulled): pause, busybox and the executor.

Usage: ``python -m tests.node.images`` builds (or finds cached) all three and prints their references,
build times and sizes. Results are cached under ``~/.cache/occam/images`` (``OCCAM_IMAGE_CACHE``),
each layer under a key of everything that goes into it, so a second build takes seconds.

The executor image is the test build of the user-facing images/ recipe. What goes into it comes from
the same two files the Dockerfile reads, never from a second list:

* ``images/notebook/apt-packages.txt``: installed with apt into a Debian rootfs made by debootstrap
  (the same suite as this machine), plus the shared libraries this machine's Python interpreter
  links to (found with ldd, mapped to their Debian packages with ``dpkg -S``).
* ``images/requirements/notebook-cpu.txt``: exactly these distributions, at exactly these versions,
  are copied from the driver's own virtual environment (each distribution's files as its RECORD lists
  them), after checking every pin against what is installed. The Dockerfile pip-installs the same
  list; copying is the cheap equivalent here (Horovod alone takes minutes to build), and makes the
  executors' Python the driver's, byte for byte.

Deliberate differences from the Dockerfile, because the driver of the node tests runs on this machine
rather than in a notebook pod of the same image: the interpreter and environment sit at the driver's
own paths (``sys.base_prefix`` and ``sys.prefix``), since Spark starts executors' Python workers
with the driver's ``spark.pyspark.python``; and Occam itself comes from this checkout.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import importlib.metadata as metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import oci

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
APT_LIST = REPO / "images" / "notebook" / "apt-packages.txt"
REQUIREMENTS = REPO / "images" / "requirements" / "notebook-cpu.txt"
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
RECIPE_VERSION = "1"  # bump to rebuild every cached layer

PAUSE_REF = "registry.k8s.io/pause:3.10"  # also the name containerd's CRI looks for as the sandbox image
#: What images/notebook/Dockerfile sets up and the test build mirrors: the user (the executor pod template
#: requires a numeric non-root one), the venv path its entrypoint and environment name, Java's home.
USER = ("jovyan", 1000, 100)
IMAGE_VENV = "/opt/occam/venv"
JAVA_HOME = "/usr/lib/jvm/default-java"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#: Parts of the interpreter's installation that the executors never use.
_INTERPRETER_SKIP = ("lib/python3.11/test", "lib/python3.11/site-packages", "include", "share", "lib/pkgconfig")


class ImageBuildError(RuntimeError):
    pass


_staging_used: dict[str, Path] = {}  # the pip staging folder the last executor build used (kept by prune)


@dataclass(frozen=True)
class Image:
    ref: str
    layout: Path
    size_bytes: int


def cache_dir() -> Path:
    return Path(os.environ.get("OCCAM_IMAGE_CACHE") or Path.home() / ".cache" / "occam" / "images")


def read_list(path: Path) -> list[str]:
    """Non-empty lines of a list file, without ``#`` comments."""
    if not path.exists():
        raise ImageBuildError(f"{path} is missing: the image recipe in images/ must provide it")
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def content_key(*parts: str | bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part if isinstance(part, bytes) else part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def run(args: list[str], what: str, **kwargs: object) -> None:
    result = subprocess.run(args, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
        raise ImageBuildError(f"{what} failed (`{' '.join(map(str, args))}`, status {result.returncode}):\n{tail}")


@contextlib.contextmanager
def locked(cache: Path) -> Iterator[None]:
    """One build at a time per cache (two test sessions may start together)."""
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# -- the pause and busybox images --------------------------------------------------------------------


def build_pause(cache: Path) -> Image:
    source = HERE / "pause.c"
    key = content_key("pause", RECIPE_VERSION, source.read_bytes())
    layer = cache / "layers" / f"pause-{key}.tar"
    if not layer.exists():
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            root = Path(tmp) / "root"
            root.mkdir()
            run(["gcc", "-static", "-O2", "-o", str(root / "pause"), str(source)], "compiling the pause binary")
            oci.tar_directory(root, layer)
    config = {"Entrypoint": ["/pause"], "User": "65535:65535"}
    return _layout(cache, PAUSE_REF, [layer], config, ["pause: tests/node/pause.c, static"])


def build_busybox(cache: Path) -> Image:
    busybox = Path(shutil.which("busybox") or "/bin/busybox")
    applets = subprocess.run([str(busybox), "--list"], capture_output=True, text=True, check=True).stdout.split()
    key = content_key("busybox", RECIPE_VERSION, busybox.read_bytes())
    layer = cache / "layers" / f"busybox-{key}.tar"
    if not layer.exists():
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            root = Path(tmp) / "root"
            (root / "bin").mkdir(parents=True)
            shutil.copy2(busybox, root / "bin" / "busybox")
            for applet in applets:
                if applet != "busybox":
                    (root / "bin" / applet).symlink_to("busybox")
            oci.tar_directory(root, layer)
    config = {"Cmd": ["sh"], "Env": ["PATH=/bin"]}
    return _layout(cache, f"localhost/occam-busybox:{key[:12]}", [layer], config, ["busybox-static from this machine"])


# -- the executor image ----------------------------------------------------------------------------------


def pinned_distributions() -> dict[str, str]:
    """``name -> version`` of every pin in the frozen requirements (``name==version`` lines only)."""
    pins = {}
    for line in read_list(REQUIREMENTS):
        match = re.fullmatch(r"([A-Za-z0-9._-]+)(?:\[[^\]]*\])?\s*==\s*([^\s;]+)", line)
        if not match:
            raise ImageBuildError(f"{REQUIREMENTS}: {line!r} is not an exact pin (name==version)")
        pins[match.group(1)] = match.group(2)
    return pins


def environment_files(cache: Path, site: Path) -> list[tuple[Path, str]]:
    """``(file, path in the image)`` of every pinned distribution, at the pinned version.

    Distributions the driver's environment holds at the pinned version are taken from it (the files its
    RECORD lists); the others (notebook-only packages the development venv lacks) are installed with
    ``pip install --no-deps --target`` into a cached staging folder and placed in the same site-packages.
    """
    files: list[tuple[Path, str]] = []
    missing = []
    for name, version in sorted(pinned_distributions().items()):
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            dist = None
        if dist is None or dist.version != version:
            missing.append(f"{name}=={version}")
            continue
        for record in dist.files or []:
            path = Path(os.path.normpath(str(dist.locate_file(record))))
            if path.exists() or path.is_symlink():
                files.append((path, str(path)))
    if missing:
        staging = cache / "pip" / f"extra-{content_key(sys.version, *missing)}"
        _staging_used["executor"] = staging
        if not staging.exists():
            partial = staging.with_suffix(".partial")
            shutil.rmtree(partial, ignore_errors=True)
            run(
                [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-deps", "--quiet",
                 "--target", str(partial), *missing],
                f"installing the {len(missing)} pins the driver's environment lacks",
            )  # fmt: skip
            partial.rename(staging)
        for path in sorted(staging.rglob("*")):
            if path.is_dir() and not path.is_symlink():
                continue
            relative = path.relative_to(staging)
            if relative.parts[0] == "bin":
                files.append((path, str(Path(sys.prefix) / relative)))
            else:
                files.append((path, str(site / relative)))
    return files


def interpreter_files() -> list[Path]:
    base = Path(sys.base_prefix)
    skip = tuple(str(base / s) for s in _INTERPRETER_SKIP)
    files: list[Path] = []
    for directory, dirnames, filenames in os.walk(base):
        dirnames[:] = [d for d in dirnames if not str(Path(directory, d)).startswith(skip) and d != "__pycache__"]
        files.extend(Path(directory, f) for f in filenames if not f.endswith(".a"))
        files.extend(Path(directory, d) for d in dirnames if Path(directory, d).is_symlink())
    return files


def venv_skeleton() -> list[Path]:
    prefix = Path(sys.prefix)
    names = ["pyvenv.cfg", "lib64", *(f"bin/{p.name}" for p in (prefix / "bin").glob("python*"))]
    return [prefix / n for n in names if (prefix / n).exists() or (prefix / n).is_symlink()]


def shared_library_packages(files: list[Path]) -> list[str]:
    """The Debian packages holding the system libraries that these binaries and extensions link to."""
    binaries = [str(f) for f in files if f.suffix == ".so" or ".so." in f.name or f.name.startswith("python3")]
    libraries: set[str] = set()
    for start in range(0, len(binaries), 200):
        out = subprocess.run(["ldd", *binaries[start : start + 200]], capture_output=True, text=True, check=False)
        libraries.update(re.findall(r"=> (/(?:usr/)?lib[^ ]*) \(", out.stdout))
    packages: set[str] = set()
    for library in sorted(libraries):
        candidates = {library, os.path.realpath(library)}
        candidates |= {c.removeprefix("/usr") for c in list(candidates)} | {"/usr" + c for c in list(candidates)}
        for candidate in candidates:
            found = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True, check=False)
            if found.returncode == 0:
                packages.add(found.stdout.split(":", 1)[0].strip())
                break
    return sorted(packages)


def build_base(cache: Path, extra_packages: list[str]) -> Path:
    """Debian (debootstrap minbase) with the recipe's apt packages and Spark's user; a cached layer."""
    packages = sorted(set(read_list(APT_LIST)) | set(extra_packages))
    key = content_key("base", RECIPE_VERSION, SUITE, MIRROR, repr(USER), *packages)
    layer = cache / "layers" / f"base-{key}.tar"
    if layer.exists():
        return layer
    for tool in ("debootstrap", "chroot", "mount"):
        if not shutil.which(tool):
            raise ImageBuildError(f"{tool} is not installed: `apt-get install debootstrap` (as root)")
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        root = Path(tmp) / "rootfs"
        run(["debootstrap", "--variant=minbase", SUITE, str(root), MIRROR], f"debootstrap {SUITE}")
        (root / "etc/apt/sources.list").write_text(
            f"deb {MIRROR} {SUITE} main\ndeb {MIRROR} {SUITE}-updates main\n"
            f"deb {MIRROR.replace('/debian', '/debian-security')} {SUITE}-security main\n"
        )
        shutil.copyfile("/etc/resolv.conf", root / "etc/resolv.conf")
        run(["mount", "-t", "proc", "proc", str(root / "proc")], "mounting /proc in the rootfs")
        try:
            env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": SYSTEM_PATH, "LC_ALL": "C"}
            chroot = ["chroot", str(root)]
            run([*chroot, "apt-get", "update"], "apt-get update in the rootfs", env=env)
            run(
                [*chroot, "apt-get", "install", "-y", "--no-install-recommends", *packages],
                f"installing {APT_LIST.name} in the rootfs",
                env=env,
            )
            run([*chroot, "apt-get", "clean"], "apt-get clean", env=env)
            name, uid, gid = USER
            useradd = ["useradd", "--uid", str(uid), "--gid", str(gid), "--create-home", "--shell", "/bin/bash", name]
            run([*chroot, *useradd], "useradd")
        finally:
            subprocess.run(["umount", "-l", str(root / "proc")], check=False)
        for leftover in ("var/lib/apt/lists", "var/cache/apt", "var/log"):
            shutil.rmtree(root / leftover, ignore_errors=True)
        (root / "etc/resolv.conf").write_text("")
        oci.tar_directory(root, layer)
    return layer


def _world_readable(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """Owned by root, readable (and where executable, runnable) by the executor's user: /root is 0700 here."""
    info.uid = info.gid = 0
    if info.isdir():
        info.mode |= 0o755
    elif info.isreg():
        info.mode |= 0o444 | (0o111 if info.mode & 0o100 else 0)
    return info


def executor_config() -> dict[str, Any]:
    """The executor image's OCI config: what images/notebook/Dockerfile's USER, ENTRYPOINT, CMD, WORKDIR and
    ENV say (tests/node/test_nodeconfig.py compares them)."""
    name, uid, gid = USER
    return {
        "User": f"{uid}:{gid}",
        "Entrypoint": ["/usr/bin/tini", "--", "/opt/occam/entrypoint.sh"],
        "Cmd": ["jupyterhub-singleuser"],  # KubeSpawner's default runs the image's command
        "WorkingDir": f"/home/{name}",
        "Env": [
            f"VIRTUAL_ENV={IMAGE_VENV}",
            f"PATH={IMAGE_VENV}/bin:{SYSTEM_PATH}",
            f"JAVA_HOME={JAVA_HOME}",
            f"SPARK_HOME={IMAGE_VENV}/lib/python3.11/site-packages/pyspark",
            f"PYSPARK_PYTHON={IMAGE_VENV}/bin/python",
            "OCCAM_IMAGE_VARIANT=cpu",
        ],
    }


def build_executor(cache: Path) -> Image:
    site = Path(sys.prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    env_files = environment_files(cache, site)
    python_files = [(f, str(f)) for f in interpreter_files() + venv_skeleton()]
    base = build_base(cache, shared_library_packages([f for f, _ in python_files + env_files]))
    pins = REQUIREMENTS.read_bytes()
    python_key = content_key("python", RECIPE_VERSION, sys.version, sys.prefix, sys.base_prefix, pins)
    python_layer = cache / "layers" / f"python-{python_key}.tar"
    if not python_layer.exists():
        oci.tar_paths(python_files + env_files, python_layer, adjust=_world_readable)
    occam_files = sorted(p for p in (REPO / "occam").rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    entries = [(p, str(site / p.relative_to(REPO))) for p in occam_files]
    link = cache / "links" / content_key(sys.prefix) / "venv"
    if not link.is_symlink():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(sys.prefix)
    entries += [
        (REPO / "images" / "notebook" / "entrypoint.sh", "/opt/occam/entrypoint.sh"),
        (REPO / "occam" / "executor_entrypoint.py", "/opt/occam/executor_entrypoint.py"),
        (REPO / "occam" / "scripts" / "get_gpus_resources.sh", "/opt/occam/get_gpus_resources.sh"),
        (link, IMAGE_VENV),
    ]
    occam_key = content_key("occam", RECIPE_VERSION, str(site), *(f"{n}\0{_content(p)}" for p, n in entries))
    occam_layer = cache / "layers" / f"occam-{occam_key}.tar"
    if not occam_layer.exists():
        oci.tar_paths(entries, occam_layer, adjust=_world_readable)
    config = executor_config()
    tag = content_key(base.name, python_layer.name, occam_layer.name, json.dumps(config, sort_keys=True))[:12]
    history = [
        f"debootstrap {SUITE} + {APT_LIST.name}",
        f"Python {sys.version.split()[0]} + {REQUIREMENTS.name}",
        "occam",
    ]
    return _layout(cache, f"localhost/occam-executor:{tag}", [base, python_layer, occam_layer], config, history)


def _content(path: Path) -> str:
    return f"-> {os.readlink(path)}" if path.is_symlink() else hashlib.sha256(path.read_bytes()).hexdigest()


def _layout(cache: Path, ref: str, layers: list[Path], config: dict, history: list[str]) -> Image:
    layout = cache / "layouts" / ref.replace("/", "_").replace(":", "_")
    if not (layout / "index.json").exists():
        oci.write_layout(layout.with_suffix(".partial"), ref, layers, config, history)
        shutil.rmtree(layout, ignore_errors=True)
        layout.with_suffix(".partial").rename(layout)
    return Image(ref, layout, sum(layer.stat().st_size for layer in layers))


def build_all(cache: Path | None = None) -> dict[str, Image]:
    """Build (or find cached) the pause, busybox and executor images; ``{"pause": ..., ...}``."""
    cache = cache or cache_dir()
    (cache / "layers").mkdir(parents=True, exist_ok=True)
    with locked(cache):
        images = {"pause": build_pause(cache), "busybox": build_busybox(cache), "executor": build_executor(cache)}
        prune(cache, images)
    return images


def prune(cache: Path, images: dict[str, Image]) -> None:
    """Remove the layers, layouts and staging folders of earlier builds (gigabytes each)."""
    keep_layouts = {image.layout for image in images.values()}
    keep_blobs = {p.stat().st_ino for layout in keep_layouts for p in (layout / "blobs" / "sha256").iterdir()}
    for layout in (cache / "layouts").iterdir():
        if layout not in keep_layouts:
            shutil.rmtree(layout, ignore_errors=True)
    for layer in (cache / "layers").iterdir():
        if layer.stat().st_ino not in keep_blobs:  # layouts hard-link the layers they use
            layer.unlink()
    staging = {p for _, p in _staging_used.items()}
    for folder in (cache / "pip").glob("extra-*"):
        if folder not in staging:
            shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=None, help="cache directory (default ~/.cache/occam/images)")
    args = parser.parse_args()
    started = time.monotonic()
    images = build_all(args.cache)
    for name, image in images.items():
        print(f"{name:9} {image.ref}  {image.size_bytes / 2**20:,.0f} MiB  {image.layout}")
    print(f"built in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
