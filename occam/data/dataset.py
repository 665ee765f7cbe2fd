"""``occam.Dataset``: training data converted once to Parquet for Petastorm, cached by content."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from occam import config
from occam.data import schema as schemas
from occam.data.fingerprint import dataframe_fingerprint, numpy_fingerprint
from occam.errors import DatasetError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

#: Petastorm shards by row group, so even a small dataset is written as several files:
#: each Horovod rank needs at least one, and more give a better shuffle.
MIN_FILES = 16
METADATA_FILE = "_occam.json"


def _active_spark(spark: SparkSession | None) -> SparkSession:
    if spark is not None:
        return spark
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is None:
        raise DatasetError(
            "no Spark session is running: start a cluster first (cluster = occam.start_cluster()) "
            "or pass spark=cluster.spark"
        )
    return active


def _session_if_any() -> SparkSession | None:
    from pyspark.sql import SparkSession

    return SparkSession.getActiveSession()


def _check_shared(spark: SparkSession | None, root: str) -> None:
    """Refuse a cache the executors write to where the driver cannot read it (its cluster's backend says)."""
    if spark is None:
        return
    from occam.backends import unshared_path_problem

    problem = unshared_path_problem(spark, root, writer="executors write the converted data")
    if problem:
        raise DatasetError(problem)


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> str:
    return os.path.join(config.path("cache_dir", cache_dir), "datasets")


@dataclass(frozen=True)
class Dataset:
    """A dataset ready for :meth:`occam.Cluster.fit`: Parquet files that Petastorm readers shard across ranks.

    Build one with :meth:`from_dataframe`, :meth:`from_parquet`, :meth:`from_numpy` or :meth:`from_hdf5`.
    The files live in the cache directory (``OCCAM_CACHE_DIR``, default ``~/.cache/occam``) under a key
    computed from the data's content, so the same data is converted once and reused by later sessions.
    """

    path: str
    features: str
    label: str | None
    feature_shape: tuple[int, ...] | None
    num_rows: int
    columns: dict[str, str]
    key: str

    # -- construction --------------------------------------------------------------------------

    @classmethod
    def from_dataframe(
        cls,
        df: DataFrame,
        *,
        features: str = "features",
        label: str | None = "label",
        feature_shape: tuple[int, ...] | None = None,
        cache_dir: str | None = None,
    ) -> Dataset:
        """Convert a Spark DataFrame. ``features`` names an array (or vector, or number) column and
        ``label`` the target column; ``feature_shape`` reshapes each row's features (e.g. ``(8, 8, 1)``).

        Doubles become float32 and ML vectors become arrays, as Keras expects; columns of other types
        that Petastorm cannot encode raise :class:`~occam.errors.DatasetError` naming them.
        """
        wanted = [features] + ([label] if label else [])
        schemas.check_columns(df.schema, wanted)
        df = df.select(*[f"`{c}`" for c in wanted])
        plan = schemas.conversions(df.schema)
        options = {"features": features, "label": label, "shape": feature_shape}
        root = cache_root(cache_dir)
        _check_shared(df.sparkSession, root)
        key = dataframe_fingerprint(df, options)
        cached = cls._load(os.path.join(root, key))
        if cached is not None:
            return cached
        return cls._write(schemas.apply_conversions(df, plan), root, key, options)

    @classmethod
    def from_parquet(cls, path: str, *, spark: SparkSession | None = None, **kwargs: Any) -> Dataset:
        """Convert Parquet files (a file or directory path Spark can read); options as :meth:`from_dataframe`."""
        if "://" not in path and not os.path.exists(path):
            raise DatasetError(f"no Parquet data at {path!r}: check the path")
        return cls.from_dataframe(_active_spark(spark).read.parquet(path), **kwargs)

    @classmethod
    def from_numpy(
        cls,
        x: np.ndarray,
        y: np.ndarray | None = None,
        *,
        spark: SparkSession | None = None,
        cache_dir: str | None = None,
    ) -> Dataset:
        """Convert in-memory arrays: ``x`` of shape (rows, ...) and optional labels ``y`` of shape (rows,).

        Each row's features keep their shape (images stay images). When the same arrays were converted
        before, even in another session, no Spark job runs at all.
        """
        x = np.asarray(x)
        if x.ndim < 1 or len(x) == 0:
            raise DatasetError("x is empty: from_numpy needs at least one row")
        if y is not None:
            y = np.asarray(y)
            if len(y) != len(x):
                raise DatasetError(f"x has {len(x)} rows but y has {len(y)}: they must match")
            if y.ndim != 1:
                raise DatasetError(f"y must be one label per row (shape (rows,)), got shape {y.shape}")
        if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
            raise DatasetError(f"x has dtype {x.dtype}: convert it to numbers (e.g. x.astype('float32'))")
        x = x.astype(np.float32) if x.dtype == np.float64 else x
        shape = tuple(int(d) for d in x.shape[1:]) or None
        arrays = {"features": x} if y is None else {"features": x, "label": y}
        options = {"features": "features", "label": "label" if y is not None else None, "shape": shape}
        key = numpy_fingerprint(arrays, options)
        root = cache_root(cache_dir)
        _check_shared(spark or _session_if_any(), root)
        cached = cls._load(os.path.join(root, key))
        if cached is not None:
            return cached
        import pandas as pd

        frame = pd.DataFrame({"features": list(x.reshape(len(x), -1))})
        if y is not None:
            frame["label"] = y
        df = _active_spark(spark).createDataFrame(frame)
        plan = schemas.conversions(df.schema)
        return cls._write(schemas.apply_conversions(df, plan), root, key, options)

    @classmethod
    def from_hdf5(
        cls,
        path: str,
        *,
        x: str = "x",
        y: str | None = "y",
        spark: SparkSession | None = None,
        cache_dir: str | None = None,
    ) -> Dataset:
        """Convert two datasets of an HDF5 file: features ``x`` and labels ``y`` (names inside the file)."""
        import h5py

        if not os.path.exists(path):
            raise DatasetError(f"no HDF5 file at {path!r}: check the path")
        with h5py.File(path, "r") as f:
            names = list(f.keys())
            for wanted in [x] + ([y] if y else []):
                if wanted not in f:
                    raise DatasetError(f"{path} has no dataset {wanted!r}; it has {names}. Pass x=... and y=...")
            x_data = f[x][()]
            y_data = f[y][()] if y else None
        return cls.from_numpy(x_data, y_data, spark=spark, cache_dir=cache_dir)

    @classmethod
    def _write(cls, df: DataFrame, root: str, key: str, options: dict[str, Any]) -> Dataset:
        os.makedirs(root, exist_ok=True)
        final = os.path.join(root, key)
        staging = os.path.join(root, f".{key}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            partitions = max(MIN_FILES, df.rdd.getNumPartitions())
            df.repartition(partitions).write.mode("overwrite").parquet("file://" + staging)
            num_rows = _parquet_rows(staging)
            if num_rows == 0:
                raise DatasetError("the data has no rows: nothing to train on")
            metadata = {
                "features": options["features"],
                "label": options["label"],
                "feature_shape": options["shape"],
                "num_rows": num_rows,
                "columns": schemas.describe(df.schema),
            }
            with open(os.path.join(staging, METADATA_FILE), "w") as fh:
                json.dump(metadata, fh)
            try:
                os.rename(staging, final)
            except OSError:
                # Another session converted the same data meanwhile: use theirs.
                shutil.rmtree(staging, ignore_errors=True)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        loaded = cls._load(final)
        if loaded is None:  # pragma: no cover - only if the cache directory is being deleted under us
            raise DatasetError(f"the converted data vanished from {final}; is something cleaning the cache?")
        return loaded

    @classmethod
    def _load(cls, path: str) -> Dataset | None:
        meta_path = os.path.join(path, METADATA_FILE)
        if not os.path.exists(meta_path):
            return None
        with open(meta_path) as fh:
            meta = json.load(fh)
        shape = meta["feature_shape"]
        return cls(
            path=path,
            features=meta["features"],
            label=meta["label"],
            feature_shape=tuple(shape) if shape else None,
            num_rows=int(meta["num_rows"]),
            columns=dict(meta["columns"]),
            key=os.path.basename(path),
        )

    # -- use -----------------------------------------------------------------------------------

    def __len__(self) -> int:
        return self.num_rows

    @property
    def schema(self) -> dict[str, str]:
        """Column name to Spark type, as written to Parquet."""
        return dict(self.columns)

    @property
    def url(self) -> str:
        return "file://" + self.path

    def file_urls(self) -> list[str]:
        return sorted(
            "file://" + os.path.join(self.path, name) for name in os.listdir(self.path) if name.endswith(".parquet")
        )

    def to_dataframe(self, spark: SparkSession | None = None) -> DataFrame:
        return _active_spark(spark).read.parquet(self.url)

    def to_numpy(self) -> tuple[np.ndarray, np.ndarray | None]:
        """All rows in memory, features reshaped as given: for evaluation and small data."""
        import pyarrow.parquet as pq

        table = pq.read_table([url.removeprefix("file://") for url in self.file_urls()])
        column = table.column(self.features).combine_chunks()
        if hasattr(column, "flatten"):  # an array column: one fixed-length list per row
            x = column.flatten().to_numpy(zero_copy_only=False).reshape(len(column), -1)
        else:
            x = column.to_numpy(zero_copy_only=False)
        if self.feature_shape:
            x = x.reshape((len(x), *self.feature_shape))
        y = table.column(self.label).combine_chunks().to_numpy(zero_copy_only=False) if self.label else None
        return x, y

    def split(self, fraction: float, *, seed: int = 42, spark: SparkSession | None = None) -> tuple[Dataset, Dataset]:
        """Split into two datasets holding about ``fraction`` and ``1 - fraction`` of the rows."""
        if not 0 < fraction < 1:
            raise DatasetError(f"split fraction {fraction!r} must be between 0 and 1, e.g. 0.8")
        df = self.to_dataframe(spark)
        first, second = df.randomSplit([fraction, 1 - fraction], seed=seed)
        root = os.path.dirname(self.path)
        options = {"features": self.features, "label": self.label, "shape": self.feature_shape}
        parts = []
        for index, part in enumerate((first, second)):
            key = _child_key(self.key, f"split-{fraction}-{seed}-{index}")
            cached = Dataset._load(os.path.join(root, key))
            parts.append(cached if cached is not None else Dataset._write(part, root, key, options))
        return parts[0], parts[1]

    def _repr_html_(self) -> str:
        cols = ", ".join(f"{k}: {v}" for k, v in self.columns.items())
        return (
            f"<div><strong>Occam dataset</strong> {self.num_rows} rows; {cols}; "
            f"features shape {self.feature_shape or '-'}<br><small>{self.path}</small></div>"
        )


def _child_key(parent: str, suffix: str) -> str:
    import hashlib

    return hashlib.sha256(f"{parent}/{suffix}".encode()).hexdigest()[:32]


def _parquet_rows(path: str) -> int:
    import pyarrow.parquet as pq

    files = [os.path.join(path, f) for f in os.listdir(path) if f.endswith(".parquet")]
    return sum(pq.ParquetFile(f).metadata.num_rows for f in files)
