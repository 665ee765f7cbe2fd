"""The unit tier is cheap: ``pytest tests/unit`` collects only that folder and passes without the training stack.

The heavy parts (TensorFlow, Spark, Horovod, Petastorm, pyarrow, pandas, h5py, scikit-learn) and the hub extra
are made unimportable in a child pytest run by a ``sitecustomize`` module on its path, which is what a venv
holding only the package's light dependencies (numpy, psutil, tqdm, the Kubernetes client) looks like to the
tests. Tests that need one of them must skip (``pytest.importorskip``), not fail at collection.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

HEAVY = ("tensorflow", "keras", "pyspark", "py4j", "horovod", "petastorm", "pyarrow", "pandas", "h5py", "sklearn")
HUB_EXTRA = ("jupyterhub", "kubespawner")

BLOCKER = """\
import sys

BLOCKED = {blocked!r}


class BlockHeavy:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"{{name}} is not installed (blocked: the unit tier needs light dependencies only)")
        return None


sys.meta_path.insert(0, BlockHeavy())
"""


def test_the_unit_tier_passes_without_the_training_stack(tmp_path: Path) -> None:
    (tmp_path / "sitecustomize.py").write_text(BLOCKER.format(blocked=sorted({*HEAVY, *HUB_EXTRA})))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/unit", "-q", "-p", "no:cacheprovider", "-x"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    tail = result.stdout[-3000:] + result.stderr[-2000:]
    assert result.returncode == 0, tail
    passed = int(re.search(r"(\d+) passed", result.stdout).group(1))  # type: ignore[union-attr]
    assert passed > 300, tail


def test_the_blocker_really_blocks(tmp_path: Path) -> None:
    """The test above means something only if the child cannot import what it blocks."""
    (tmp_path / "sitecustomize.py").write_text(BLOCKER.format(blocked=sorted(HEAVY)))
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", "import pyspark"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0 and "blocked" in result.stderr
