#!/usr/bin/env bash
# Create the project virtualenv (.venv) with the pinned training stack and Horovod built
# with the flags it needs. Idempotent: a second run only checks that everything is in place.
# The versions and flags are explained in docs/stack.md.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${OCCAM_VENV:-$here/.venv}
python=${PYTHON:-python3}
stamp=$venv/.occam-setup-stamp
# The stamp records what was installed; any change to the pins re-runs the install.
fingerprint=$(cat "$here/pyproject.toml" "$here/scripts/setup-venv.sh" | sha256sum | cut -d' ' -f1)

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$fingerprint" ]; then
  echo "occam setup: $venv is up to date"
  exit 0
fi

if ! command -v java >/dev/null 2>&1; then
  echo "occam setup: Spark needs a Java runtime (17 works); install one, e.g. 'apt-get install openjdk-17-jre-headless'" >&2
  exit 1
fi

[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip --disable-pip-version-check)
"${pip[@]}" install -q "pip>=23,<25" "setuptools<70" wheel "cmake>=3.26"
# Horovod's build must see TensorFlow (no build isolation), so TensorFlow comes first.
"${pip[@]}" install -q "tensorflow-cpu==2.15.1" "numpy==1.26.4"
if ! "$venv/bin/python" -c "import horovod.tensorflow" >/dev/null 2>&1; then
  echo "occam setup: building Horovod 0.28.1 (about 7 minutes on 2 cores the first time; pip caches the wheel)"
  CMAKE_POLICY_VERSION_MINIMUM=3.5 HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITH_GLOO=1 \
    HOROVOD_WITHOUT_MPI=1 HOROVOD_WITHOUT_PYTORCH=1 HOROVOD_WITHOUT_MXNET=1 \
    PATH="$venv/bin:$PATH" "${pip[@]}" install -q --no-build-isolation "horovod==0.28.1"
fi
"${pip[@]}" install -q -e "$here[dev]"
"${pip[@]}" check
echo "$fingerprint" > "$stamp"
echo "occam setup: ready in $venv"
