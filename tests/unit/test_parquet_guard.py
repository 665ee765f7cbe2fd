"""A Parquet file carrying a pickled ``arrow.py_extension_type`` (CVE-2023-47248) is refused, not unpickled.

Real pyarrow 10 and a real file: the evil type's pickle would create a marker file when loaded. Each step runs
in a fresh interpreter, because the hotfix, once imported, guards the whole process.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("pyarrow", reason="the guard wraps pyarrow")

PLANT = textwrap.dedent(
    """
    import os, sys
    import pyarrow as pa, pyarrow.parquet as pq

    class Evil(pa.PyExtensionType):
        def __init__(self):
            super().__init__(pa.int64())
        def __reduce__(self):
            return (os.system, (f"touch {sys.argv[2]}",))

    storage = pa.array([1, 2, 3], pa.int64())
    table = pa.table({"features": pa.ExtensionArray.from_storage(Evil(), storage), "label": [0, 1, 0]})
    pq.write_table(table, sys.argv[1])
    """
)

READ_WITH_OCCAM = textwrap.dedent(
    """
    import sys
    from occam.data.parquet import guarded_parquet
    try:
        guarded_parquet().read_table(sys.argv[1])
        print("READ")
    except Exception as refused:
        print("REFUSED", type(refused).__name__, refused)
    """
)


def run(script: str, *args: str) -> str:
    result = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_a_planted_extension_type_is_refused_and_its_code_never_runs(tmp_path: Path) -> None:
    planted, marker = tmp_path / "part-0.parquet", tmp_path / "pwned"
    run(PLANT, str(planted), str(marker))
    assert planted.exists() and not marker.exists()
    out = run(READ_WITH_OCCAM, str(planted))
    assert out.startswith("REFUSED"), out
    assert not marker.exists(), "the pickle in the file's metadata ran"


def test_the_plant_is_really_dangerous_without_the_guard(tmp_path: Path) -> None:
    """What the test above means: plain pyarrow 10 runs the planted code."""
    planted, marker = tmp_path / "part-0.parquet", tmp_path / "pwned"
    run(PLANT, str(planted), str(marker))
    subprocess.run(
        [sys.executable, "-c", "import sys, pyarrow.parquet as pq; pq.read_table(sys.argv[1])", str(planted)],
        capture_output=True,
        timeout=120,
    )
    assert marker.exists()


def test_the_dataset_cache_is_private_and_a_shared_or_foreign_one_is_refused(tmp_path: Path) -> None:
    import os

    from occam.data.dataset import cache_root
    from occam.errors import DatasetError

    root = cache_root(tmp_path / "mine")
    assert os.stat(root).st_mode & 0o777 == 0o700 and os.stat(tmp_path / "mine").st_mode & 0o777 == 0o700
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(DatasetError, match=r"writable by other users \(mode 777\): run chmod go-w"):
        cache_root(shared)
    if os.getuid() == 0:
        foreign = tmp_path / "foreign"
        foreign.mkdir(mode=0o700)
        os.chown(foreign, 12345, 12345)
        with pytest.raises(DatasetError, match="belongs to user id 12345, not to you"):
            cache_root(foreign)
