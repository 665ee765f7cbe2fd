"""Content fingerprints: the cache key of a converted dataset, the same for the same data in any session."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

#: Bump when the on-disk layout of converted datasets changes, so old caches are not reused.
LAYOUT_VERSION = 2
#: Bytes hashed at a time: hashing never copies a whole array or reads a whole file into memory.
_HASH_CHUNK = 1024 * 1024


def _digest(parts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


def numpy_fingerprint(arrays: dict[str, np.ndarray], options: dict[str, Any]) -> str:
    """Key of in-memory arrays: their bytes, dtypes and shapes, and the conversion options."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        array = arrays[name]
        h.update(f"{name}:{array.dtype.str}:{array.shape}".encode())
        rows = max(1, _HASH_CHUNK // max(1, array[:1].nbytes)) if array.ndim else 1
        for start in range(0, max(1, len(array) if array.ndim else 1), rows):
            part = np.ascontiguousarray(array[start : start + rows] if array.ndim else array)
            h.update(part.reshape(-1).view(np.uint8).data)
    return _digest({"layout": LAYOUT_VERSION, "kind": "numpy", "data": h.hexdigest(), **options})


def file_digest(path: str) -> str:
    """SHA-256 of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def files_fingerprint(kind: str, files: list[tuple[str, str]], options: dict[str, Any]) -> str:
    """Key of data read from files: each file's name (as the source sees it) and content, and the options."""
    digests = [(name, file_digest(path)) for name, path in files]
    return _digest({"layout": LAYOUT_VERSION, "kind": kind, "files": digests, **options})


def dataframe_fingerprint(df: Any, options: dict[str, Any]) -> str:
    """Key of a Spark DataFrame's content, computed by one aggregation on the cluster.

    Independent of row order and partitioning: the row count, the XOR of per-row 64-bit hashes and
    a sum of differently seeded per-row hashes (which duplicates cannot cancel), with the schema.
    """
    from pyspark.sql import functions as F

    columns = [F.col(f"`{name}`") for name in df.columns]
    row_hash = F.xxhash64(*columns)
    salted = F.pmod(F.xxhash64(F.lit("occam"), *columns), F.lit(2147483647))
    count, xor, total = df.agg(F.count(F.lit(1)), F.bit_xor(row_hash), F.sum(salted)).first()
    return _digest(
        {
            "layout": LAYOUT_VERSION,
            "kind": "dataframe",
            # Names and types only: nullability and metadata depend on how the frame was built, not on the data.
            "schema": [(f.name, f.dataType.simpleString()) for f in df.schema.fields],
            "rows": count,
            "xor": xor,
            "sum": total,
            **options,
        }
    )
