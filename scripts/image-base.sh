#!/usr/bin/env bash
# The local stand-in for the images' base, python:<X.Y.Z>-slim-bookworm (no registry can be reached here):
# Debian 12 made with debootstrap, slimmed as Debian's -slim images are, with the runtime libraries CPython
# links to, and a CPython of exactly the Dockerfiles' patch release under /usr/local (copied from an
# installation on this machine, built from source with --enable-shared as the official image's is).
# Imported into podman as $OCCAM_BASE_REF; rebuilt only when its inputs change (a label holds their key).
#
#   scripts/image-base.sh PYTHON_PREFIX     (e.g. the venv's sys.base_prefix; its version must be the base's)
#
# docs/images.md ("The local base") says how this base differs from the official one.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
prefix=${1:?usage: image-base.sh PYTHON_PREFIX}
suite=bookworm
mirror=http://deb.debian.org/debian
recipe=1 # bump to rebuild the base
# The Python release the Dockerfiles name (ARG BASE_IMAGE=python:3.11.7-slim-bookworm).
version=$(sed -n 's/^ARG BASE_IMAGE=python:\([0-9.]*\)-slim-bookworm$/\1/p' "$here/images/notebook/Dockerfile")
minor=${version%.*}
ref=${OCCAM_BASE_REF:-localhost/occam-python-base:$version-slim-$suite}
cache=${OCCAM_IMAGE_CACHE:-$HOME/.cache/occam/images}

python=$prefix/bin/python$minor
have=$("$python" -c 'import platform; print(platform.python_version())' 2>/dev/null || true)
if [ "$have" != "$version" ]; then
  echo "image-base: the Dockerfiles' base is Python $version, but $python is '${have:-missing}';" \
    "pass the prefix of a CPython $version (e.g. pyenv install $version)" >&2
  exit 1
fi
if [ ! -f "$prefix/lib/libpython$minor.so.1.0" ] || [ ! -f "$prefix/include/python$minor/Python.h" ]; then
  echo "image-base: $prefix lacks libpython$minor.so or its headers (the official image is --enable-shared" \
    "and carries them; Horovod's build needs the headers)" >&2
  exit 1
fi

# The Debian packages of the official image: ca-certificates, netbase, tzdata, and those holding the shared
# libraries the interpreter and its extension modules link to (found the way the official Dockerfile does:
# ldd, then dpkg --search; tkinter left out as there). This machine is Debian 12 too.
mapfile -t libraries < <(find "$prefix/bin/python$minor" "$prefix/lib/python$minor/lib-dynload" -type f \
  -not -name '*tkinter*' -exec ldd {} + 2>/dev/null | awk '/=>/ { print $(NF-1) }' | grep -v "^$prefix" | sort -u)
packages=(ca-certificates netbase tzdata)
for library in "${libraries[@]}"; do
  owner=$(dpkg -S "$(realpath "$library")" 2>/dev/null || dpkg -S "$library" 2>/dev/null || true)
  [ -n "$owner" ] && packages+=("${owner%%:*}")
done
mapfile -t packages < <(printf '%s\n' "${packages[@]}" | sort -u)

key=$( (echo "$recipe $suite $mirror $version ${packages[*]}"; sha256sum "$python" "$prefix/lib/libpython$minor.so.1.0";
  sed -n '/^# ---- rootfs/,$p' "${BASH_SOURCE[0]}") | sha256sum | cut -c1-16)
if [ "$(podman image inspect --format '{{ index .Labels "org.occam.base-key" }}' "$ref" 2>/dev/null)" = "$key" ]; then
  echo "image-base: $ref is up to date ($key)"
  exit 0
fi

# ---- rootfs (everything below is part of the key) ----
mkdir -p "$cache"
work=$(mktemp -d "$cache/base.XXXXXX")
root=$work/rootfs
cleanup() {
  umount -l "$root/proc" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
echo "image-base: debootstrap $suite (minbase) + ${packages[*]}"
debootstrap --variant=minbase "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 ||
  { tail -20 "$work/debootstrap.log" >&2; exit 1; }
cat >"$root/etc/apt/sources.list" <<EOF
deb $mirror $suite main
deb $mirror $suite-updates main
deb ${mirror%/debian}/debian-security $suite-security main
EOF
# What Debian's -slim images exclude (debuerreotype's slimify): manual pages, docs, locales.
cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
cp /etc/resolv.conf "$root/etc/resolv.conf"
mount -t proc proc "$root/proc"
in_root() { DEBIAN_FRONTEND=noninteractive LC_ALL=C PATH=/usr/sbin:/usr/bin:/sbin:/bin chroot "$root" "$@"; }
in_root apt-get update -qq
in_root apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
in_root apt-get clean
umount -l "$root/proc"
find "$root/usr/share/doc" -mindepth 2 -not -name copyright -not -type d -delete
find "$root/usr/share/man" "$root/usr/share/info" "$root/usr/share/lintian" -mindepth 1 -delete 2>/dev/null || true
find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/log/* "$root"/tmp/*
: >"$root/etc/resolv.conf"

# CPython under /usr/local, as the official image installs it: no site-packages of the source installation,
# no tests, no static library, no bytecode; the installation's own prefix rewritten to /usr/local where it is
# written into text files (sysconfig data, the config Makefile, python-config, pkg-config files).
local=$root/usr/local
mkdir -p "$local/bin" "$local/lib" "$local/include"
cp -a "$prefix/include/python$minor" "$local/include/"
cp -a "$prefix/lib/libpython$minor.so.1.0" "$prefix/lib/libpython$minor.so" "$prefix/lib/libpython3.so" "$local/lib/"
cp -a "$prefix/lib/pkgconfig" "$local/lib/"
tar -C "$prefix/lib" --exclude="python$minor/site-packages/*" --exclude='__pycache__' --exclude='*.pyc' \
  --exclude="python$minor/test" --exclude="python$minor/*/test" --exclude="python$minor/*/tests" \
  --exclude="python$minor/idlelib/idle_test" --exclude='*.a' -cf - "python$minor" | tar -C "$local/lib" -xf -
cp -a "$prefix/bin/python$minor" "$prefix/bin/python$minor-config" "$prefix/bin/pydoc$minor" "$local/bin/"
grep -rlI --null "$prefix" "$local" | xargs -0 -r sed -i "s#$prefix#/usr/local#g"
for link in python3:python$minor python:python3 python3-config:python$minor-config python-config:python3-config \
  pydoc3:pydoc$minor pydoc:pydoc3; do
  ln -s "${link#*:}" "$local/bin/${link%%:*}"
done
in_root ldconfig
# pip and setuptools as the official image has them (from ensurepip's bundled wheels: no download).
in_root /usr/local/bin/python3 -m ensurepip --default-pip >/dev/null
in_root /usr/local/bin/python3 -c 'import ssl, sqlite3, ctypes, lzma, bz2, zlib, readline, uuid, decimal'
find "$local" -depth -name __pycache__ -exec rm -rf {} +

echo "image-base: importing $ref"
tar --numeric-owner -C "$root" -cf - . | podman import \
  --change "ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
  --change "ENV LANG=C.UTF-8" --change "ENV PYTHON_VERSION=$version" \
  --change "LABEL org.occam.base-key=$key" --change 'CMD ["python3"]' \
  --message "Debian $suite (debootstrap minbase, slimmed) + CPython $version under /usr/local" - "$ref" >/dev/null
echo "image-base: $ref built ($key)"
