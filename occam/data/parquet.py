"""pyarrow for the Parquet files Occam reads, always with the fix for CVE-2023-47248 in place.

pyarrow 10 (the newest Petastorm takes) unpickles the metadata of the ``arrow.py_extension_type`` extension
type when it reads a file: a Parquet file planted in a shared cache or data folder would run code in the
driver and in every rank. ``pyarrow-hotfix`` makes pyarrow refuse that type; importing it installs the guard,
so every reader (the driver's and each rank's) gets its pyarrow from here.
"""

from __future__ import annotations

from types import ModuleType


def guarded_pyarrow() -> ModuleType:
    """``pyarrow`` after the hotfix is installed."""
    import pyarrow
    import pyarrow_hotfix  # noqa: F401  (importing it installs the guard)

    return pyarrow


def guarded_parquet() -> ModuleType:
    """``pyarrow.parquet`` after the hotfix is installed."""
    guarded_pyarrow()
    import pyarrow.parquet

    return pyarrow.parquet
