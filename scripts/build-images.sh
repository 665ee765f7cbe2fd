#!/usr/bin/env bash
# Build the images admins deploy from images/*/Dockerfile with a real builder (podman, Debian's package), from
# the local stand-in of their base (scripts/image-base.sh), and export them for the node tier.
#
#   scripts/build-images.sh notebook-cpu hub proxy  (`make images`)
#   scripts/build-images.sh notebook-gpu          (`make images-gpu`, for a release)
#
# Tags: localhost/occam-notebook:<version>[-gpu], localhost/occam-hub:<version>, localhost/occam-proxy:<version>
# (<version> from pyproject.toml).
# podman's layer cache makes an unchanged build take seconds; pip's cache is a build cache mount (the
# Dockerfiles' RUN --mount=type=cache), so a cold layer cache re-downloads nothing pip already has.
# Each notebook-cpu, hub and proxy build is also saved as an OCI archive,
# $OCCAM_IMAGE_CACHE/exports/<name>-<image id>.tar, which the node tier imports into its containerd
# (tests/node/images.py; the hub and proxy images for the release test); older exports are removed.
# Needs root (rootful podman: the builds run apt and pip in containers) and the network (Debian, PyPI).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
venv=${VENV:-$here/.venv}
cache=${OCCAM_IMAGE_CACHE:-$HOME/.cache/occam/images}
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml | head -1)
python_version=$(sed -n 's/^ARG BASE_IMAGE=python:\([0-9.]*\)-slim-bookworm$/\1/p' images/notebook/Dockerfile)
base=localhost/occam-python-base:$python_version-slim-bookworm

if [ $# -eq 0 ]; then
  set -- notebook-cpu hub proxy
fi
if ! command -v podman >/dev/null 2>&1; then
  echo "build-images: podman is missing: scripts/system-packages.sh (as root) installs it" >&2
  exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "build-images: run as root (rootful podman; the base is made with debootstrap)" >&2
  exit 1
fi

# The base's CPython is the one the venv runs (the Dockerfiles' patch release; image-base.sh checks it).
prefix=$("$venv/bin/python" -c 'import sys; print(sys.base_prefix)')
OCCAM_IMAGE_CACHE=$cache bash scripts/image-base.sh "$prefix"

# Docker's image format: podman's OCI format drops SHELL (it warns), and the Dockerfiles' RUN steps need bash
# with pipefail. This machine's limits: podman's defaults (nofile 1048576) exceed what a container may set here. runc,
# because crun refuses this machine's hybrid cgroup layout.
nofile=$(ulimit -Hn)
nproc=$(ulimit -Hu)
[ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ] && nproc=32768
[ "$nofile" = unlimited ] && nofile=1048576
build=(podman --runtime runc build --network host --layers --format docker
  --ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc" --build-arg "BASE_IMAGE=$base")
# A TLS-inspecting proxy between this machine and PyPI (as here: pip's `cert`/PIP_CERT names its CA): lend the
# RUN steps that CA through pip's global config, as read-only bind mounts. Their contents never enter a layer;
# their empty mount points do (/etc/pip.conf, /run/occam-build), which pip reads as no configuration.
ca=${PIP_CERT:-$("$venv/bin/python" -m pip config get global.cert 2>/dev/null || true)}
if [ -n "$ca" ] && [ -f "$ca" ]; then
  mkdir -p "$cache/build-trust"
  printf '[global]\ncert = /run/occam-build/ca.pem\n' >"$cache/build-trust/pip.conf"
  build+=(-v "$cache/build-trust/pip.conf:/etc/pip.conf:ro" -v "$ca:/run/occam-build/ca.pem:ro")
fi

# pip's cache mount starts with the wheels this machine's pip already built from sdists (`make setup` builds
# the same Horovod, at the same pin, with the same flags, for the same CPython and Debian release): pip's
# wheel cache is keyed by the sdist's URL and hash and the interpreter, so the image's pip finds Horovod's
# wheel instead of compiling it again (about 20 minutes on 2 cores). Hard links where the filesystem
# allows; files already in the mount are kept. buildah keeps an unnamed cache mount under
# $TMPDIR/buildah-cache/<target>; should that move, the build only compiles Horovod itself.
host_wheels=${PIP_CACHE_DIR:-$HOME/.cache/pip}/wheels
mount_wheels=${TMPDIR:-/var/tmp}/buildah-cache/root/.cache/pip/wheels
if [ -d "$host_wheels" ]; then
  mkdir -p "$mount_wheels"
  cp -a --link -n "$host_wheels/." "$mount_wheels/" 2>/dev/null || cp -a -n "$host_wheels/." "$mount_wheels/"
fi

export_archive() { # ref name: an uncompressed OCI archive of ref for the node tier, named by the image's id
  local id out
  id=$(podman image inspect --format '{{.Id}}' "$1" | cut -c1-12)
  out=$cache/exports/$2-$id.tar
  mkdir -p "$cache/exports"
  if [ ! -f "$out" ]; then
    find "$cache/exports" -name "$2-*.tar*" -delete
    podman save --format oci-archive --uncompressed -o "$out.partial" "$1"
    mv "$out.partial" "$out"
  fi
  echo "build-images: $1 exported to $out"
}

# Everything a build reads: the base's id, the build arguments and the context the .dockerignore files let in
# (podman's own cache check hashes every COPY source, the venv's gigabytes included: about 100 s here).
inputs_key() {
  { podman image inspect --format '{{.Id}}' "$base"; printf '%s\n' "$@"
    find pyproject.toml README.md occam spawner images -type f -not -name '*.pyc' -not -path '*/__pycache__/*' \
      -print0 | sort -z | xargs -0 sha256sum; } | sha256sum | cut -c1-16
}

export_name() { # target: the name of its archive for the node tier ('' for none)
  case "$1" in
  notebook-cpu) echo occam-notebook ;;
  hub | proxy) echo "occam-$1" ;;
  esac
}

for target in "$@"; do
  started=$(date +%s)
  key=$(inputs_key "$target" "${build[@]}")
  stamp=$cache/exports/$target.inputs
  id=$(podman image inspect --format '{{.Id}}' "$(sed -n 2p "$stamp" 2>/dev/null || echo none)" 2>/dev/null || true)
  if [ -n "$id" ] && [ "$(sed -n 1p "$stamp")" = "$key" ] && [ "$(sed -n 3p "$stamp")" = "$id" ]; then
    echo "build-images: $(sed -n 2p "$stamp") is up to date with its Dockerfile and context ($key)"
    [ -z "$(export_name "$target")" ] || export_archive "$(sed -n 2p "$stamp")" "$(export_name "$target")"
    continue
  fi
  case "$target" in
  notebook-cpu | notebook-gpu)
    variant=${target#notebook-}
    ref=localhost/occam-notebook:$version$([ "$variant" = gpu ] && echo -gpu || true)
    "${build[@]}" -f images/notebook/Dockerfile --ignorefile images/notebook/Dockerfile.dockerignore \
      --build-arg "VARIANT=$variant" -t "$ref" .
    ;;
  hub)
    ref=localhost/occam-hub:$version
    "${build[@]}" -f images/hub/Dockerfile --ignorefile images/hub/Dockerfile.dockerignore -t "$ref" .
    ;;
  proxy)
    ref=localhost/occam-proxy:$version
    "${build[@]}" -f images/proxy/Dockerfile --ignorefile images/proxy/Dockerfile.dockerignore -t "$ref" .
    ;;
  *)
    echo "build-images: unknown image '$target' (notebook-cpu, notebook-gpu, hub, proxy)" >&2
    exit 1
    ;;
  esac
  mkdir -p "$cache/exports"
  printf '%s\n%s\n%s\n' "$key" "$ref" "$(podman image inspect --format '{{.Id}}' "$ref")" >"$stamp"
  size=$(podman image inspect --format '{{.Size}}' "$ref")
  echo "build-images: $ref built in $(($(date +%s) - started)) s, $((size / 1048576)) MiB"
  [ -z "$(export_name "$target")" ] || export_archive "$ref" "$(export_name "$target")"
done
