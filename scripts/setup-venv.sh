#!/usr/bin/env bash
# Create the project virtualenv (.venv) from the project's lock, the same frozen files the images install:
# images/requirements/build-tools.txt, notebook-cpu.txt and dev.txt (scripts/freeze_requirements.py writes them;
# `make freeze` refreshes them on purpose). Every install is --no-deps from those files, so the venv holds the
# same versions on every machine and every day, whatever the index serves. Horovod is built from its sdist with
# the flags it needs (docs/stack.md); pip caches the built wheel.
#
# Idempotent: the stamp ($venv/.occam-lock) lists the sha256 of each lock file and of this script; when they
# all match, nothing is done. A changed lock re-installs, and removes what the lock no longer holds.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${OCCAM_VENV:-$here/.venv}
python=${PYTHON:-python3}
lock=$here/images/requirements
stamp=$venv/.occam-lock
cd "$here"
# The stamp's format is `sha256sum` output over these paths, relative to the repository; the unit tests read it.
locked_files=(images/requirements/build-tools.txt images/requirements/notebook-cpu.txt images/requirements/dev.txt
  scripts/setup-venv.sh pyproject.toml)
wanted=$(sha256sum "${locked_files[@]}")

if [ -f "$stamp" ] && [ -x "$venv/bin/python" ] && [ "$(cat "$stamp")" = "$wanted" ]; then
  echo "occam setup: $venv is up to date with the lock"
  exit 0
fi

if ! command -v java >/dev/null 2>&1; then
  echo "occam setup: Spark needs a Java runtime (17 works); install one, e.g. 'apt-get install openjdk-17-jre-headless'" >&2
  exit 1
fi
# The lock is resolved for one interpreter minor version (its header says which).
want_minor=$(sed -n 's/^# Resolved for Python \([0-9.]*\) .*/\1/p' "$lock/notebook-cpu.txt")
have_minor=$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
if [ "$have_minor" != "$want_minor" ]; then
  echo "occam setup: the lock is for Python $want_minor, but $python is $have_minor; run with PYTHON=python$want_minor" >&2
  exit 1
fi

rm -f "$stamp"
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
vpython=$venv/bin/python
pip=("$vpython" -m pip --disable-pip-version-check --no-input)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"${pip[@]}" install -q --no-deps -r "$lock/build-tools.txt"
# Everything but Horovod first: Horovod's build must see TensorFlow (no build isolation).
grep -v '^horovod==' "$lock/notebook-cpu.txt" > "$tmp/without-horovod.txt"
"${pip[@]}" install -q --no-deps -r "$tmp/without-horovod.txt" -r "$lock/dev.txt"
horovod=$(grep '^horovod==' "$lock/notebook-cpu.txt")
if [ "$("$vpython" -c 'from importlib.metadata import version; print(version("horovod"))' 2>/dev/null || true)" != "${horovod#horovod==}" ] ||
   ! "$vpython" -c "import horovod.tensorflow" >/dev/null 2>&1; then
  echo "occam setup: building $horovod (about 7 minutes on 2 cores the first time; pip caches the wheel)"
  CMAKE_POLICY_VERSION_MINIMUM=3.5 HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITH_GLOO=1 \
    HOROVOD_WITHOUT_MPI=1 HOROVOD_WITHOUT_PYTORCH=1 HOROVOD_WITHOUT_MXNET=1 \
    PATH="$venv/bin:$PATH" "${pip[@]}" install -q --no-deps --no-build-isolation "$horovod"
fi
# The project itself, editable, built with the locked setuptools (no build isolation: nothing resolved here).
"${pip[@]}" install -q --no-deps --no-build-isolation -e "$here"

# The venv is exactly the lock: remove what it no longer holds (after a `make freeze` dropped a package).
cat "$lock/build-tools.txt" "$lock/notebook-cpu.txt" "$lock/dev.txt" > "$tmp/all.txt"
"$vpython" - "$tmp/all.txt" > "$tmp/extra.txt" <<'EOF'
import re, sys
from importlib import metadata

def canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()

locked = {}
for line in open(sys.argv[1]):
    line = line.split("#", 1)[0].strip()
    if line:
        name, _, version = line.partition("==")
        locked[canonical(name)] = version
installed = {canonical(d.metadata["Name"]): d.version for d in metadata.distributions()}
wrong = {n: (v, locked[n]) for n, v in installed.items() if n in locked and v != locked[n]}
if wrong:
    sys.exit(f"occam setup: installed versions differ from the lock: {wrong}")
missing = sorted(set(locked) - set(installed))
if missing:
    sys.exit(f"occam setup: the lock's {missing} did not install")
extra = sorted(set(installed) - set(locked) - {"occam"})
if extra:
    print("\n".join(extra))
EOF
if [ -s "$tmp/extra.txt" ]; then
  echo "occam setup: removing what the lock no longer holds: $(tr '\n' ' ' < "$tmp/extra.txt")"
  "${pip[@]}" uninstall -q -y -r "$tmp/extra.txt"
fi
"${pip[@]}" check
echo "$wanted" > "$stamp"
rm -f "$venv/.occam-setup-stamp"  # the stamp of the pre-lock setup
echo "occam setup: ready in $venv (installed from the lock: images/requirements/)"
