"""Content fingerprints: the cache key of a converted dataset, the same for the same data in any session."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

#: Bump when the on-disk layout of converted datasets changes, so old caches are not reused.
LAYOUT_VERSION = 1


def _digest(parts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


def numpy_fingerprint(arrays: dict[str, np.ndarray], options: dict[str, Any]) -> str:
    """Key of in-memory arrays: their bytes, dtypes and shapes, and the conversion options."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        h.update(f"{name}:{array.dtype.str}:{array.shape}".encode())
        h.update(array.tobytes())
    return _digest({"layout": LAYOUT_VERSION, "kind": "numpy", "data": h.hexdigest(), **options})


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
