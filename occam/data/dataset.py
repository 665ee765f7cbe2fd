"""``occam.Dataset``: training data converted once to Parquet for Petastorm, cached by content."""

from __future__ import annotations

import contextlib
import html
import json
import os
import shutil
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from occam import config
from occam.data import labels, writers
from occam.data import schema as schemas
from occam.data.fingerprint import dataframe_fingerprint, files_fingerprint, numpy_fingerprint
from occam.data.parquet import guarded_parquet
from occam.data.writers import METADATA_FILE, MIN_FILES, ArrayLayout
from occam.errors import DatasetError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["METADATA_FILE", "MIN_FILES", "Dataset", "cache_root"]


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
    try:
        from pyspark.sql import SparkSession
    except ImportError:  # no Spark installed: no cluster whose executors could miss the files
        return None
    return SparkSession.getActiveSession()


def _check_shared(spark: SparkSession | None, root: str) -> None:
    """Refuse a cache the executors write to where the driver cannot read it (its cluster's backend says)."""
    if spark is None:
        return
    from occam.backends import unshared_path_problem

    problem = unshared_path_problem(spark, root, writer="the dataset is converted")
    if problem:
        raise DatasetError(problem)


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> str:
    """The dataset cache (``<cache_dir>/datasets``), made private to this user, and refused when it is not.

    A cached entry is code-adjacent: it decides what every rank reads, and a planted Parquet file is an attack
    surface. So the cache folder and its parent are created mode 0700, and an existing one must belong to this
    user and be writable by nobody else.
    """
    base = config.path("cache_dir", cache_dir)
    root = os.path.join(base, "datasets")
    for folder in (base, root):
        _ensure_private(folder)
    return root


def _ensure_private(folder: str) -> None:
    with contextlib.suppress(FileExistsError):
        os.makedirs(folder, mode=0o700)
    info = os.stat(folder)
    if info.st_uid != os.getuid():
        raise DatasetError(
            f"the dataset cache {folder} belongs to user id {info.st_uid}, not to you: another user could put "
            "data there that your training reads; set OCCAM_CACHE_DIR (or cache_dir=...) to a folder of your own"
        )
    if info.st_mode & 0o022:
        raise DatasetError(
            f"the dataset cache {folder} is writable by other users (mode {info.st_mode & 0o777:o}): run "
            f"chmod go-w {folder}, or set OCCAM_CACHE_DIR (or cache_dir=...) to a private folder"
        )


@dataclass(frozen=True)
class Dataset:
    """A dataset ready for :meth:`occam.Cluster.fit`: Parquet files that Petastorm readers shard across ranks.

    Build one with :meth:`from_numpy`, :meth:`from_hdf5`, :meth:`from_images`, :meth:`from_dataframe` or
    :meth:`from_parquet`. The files live in the cache directory (``OCCAM_CACHE_DIR``, default ``~/.cache/occam``) under a key
    computed from the data's content, so the same data is converted once and reused by later sessions.
    """

    path: str
    features: str
    label: str | None
    feature_shape: tuple[int, ...] | None
    num_rows: int
    columns: dict[str, str]
    key: str
    #: The dtype of raw-encoded features (written by the driver: from_numpy, from_hdf5, from_images);
    #: None for columns Spark wrote (from_dataframe, from_parquet), which hold plain numbers or arrays.
    feature_dtype: str | None = None
    #: The labels' dtype as given (they are stored as the nearest type Petastorm reads).
    label_dtype: str | None = None
    #: For from_images: the class of each label, in label order.
    class_names: tuple[str, ...] | None = None
    #: Labels of a multi-output model, one column each: ``(column, output name, dtype)``. The output names
    #: are the keys of a dict of labels (Keras matches them to the model's output names); None for a list
    #: of labels (matched to the outputs by position). ``label`` is None then. The dtype is as given, or
    #: None for columns Spark wrote.
    outputs: tuple[tuple[str, str | None, str | None], ...] = ()

    @property
    def layout(self) -> ArrayLayout | None:
        """How raw-encoded features are decoded (None for Spark-written columns)."""
        if self.feature_dtype is None:
            return None
        outputs = tuple((column, name, dtype or "float32") for column, name, dtype in self.outputs)
        return ArrayLayout(
            self.feature_dtype, self.feature_shape or (), self.label_dtype if self.label else None, outputs
        )

    @property
    def labelled(self) -> bool:
        """Whether the rows have labels: one column, or one per model output."""
        return self.label is not None or bool(self.outputs)

    @property
    def label_columns(self) -> tuple[str, ...]:
        """The label columns in order: ``(label,)``, one per output, or none."""
        if self.outputs:
            return tuple(column for column, _, _ in self.outputs)
        return () if self.label is None else (self.label,)

    def labels_as_keras_takes_them(self, values: list[Any], sequence: Any = list) -> Any:
        """The labels of :attr:`label_columns` (``values``, in that order) as Keras' ``fit`` takes ``y``: the one
        array, a dict by output name, or a ``sequence`` (``list``, or ``tuple`` inside tf.data) by position."""
        return labels.keras_labels(self.outputs, values, sequence)

    # -- construction --------------------------------------------------------------------------

    @classmethod
    def from_dataframe(
        cls,
        df: DataFrame,
        *,
        features: str = "features",
        label: str | Sequence[str] | Mapping[str, str] | None = "label",
        feature_shape: tuple[int, ...] | None = None,
        cache_dir: str | None = None,
    ) -> Dataset:
        """Convert a Spark DataFrame. ``features`` names an array (or vector, or number) column and
        ``label`` the target column; ``feature_shape`` reshapes each row's features (e.g. ``(8, 8, 1)``).
        For a model with several outputs, ``label`` is a dict of output name to column (Keras matches the
        names to the model's outputs) or a list of columns (matched by position).

        Doubles become float32 and ML vectors become arrays, as Keras expects; columns of other types
        that Petastorm cannot encode raise :class:`~occam.errors.DatasetError` naming them.
        """
        single, outputs = labels.dataframe_labels(label)
        wanted = [features] + ([single] if single else []) + [column for column, _ in outputs]
        schemas.check_columns(df.schema, wanted)
        df = df.select(*[f"`{c}`" for c in wanted])
        plan = schemas.conversions(df.schema)
        options: dict[str, Any] = {"features": features, "label": single, "shape": feature_shape}
        if outputs:
            options["outputs"] = [[column, name, None] for column, name in outputs]
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
        x: Any,
        y: Any = None,
        *,
        spark: SparkSession | None = None,
        cache_dir: str | None = None,
    ) -> Dataset:
        """Convert in-memory arrays: ``x`` of shape (rows, ...) and optional labels ``y`` of shape (rows,).

        For a model with several outputs, ``y`` is a dict of output name to labels (Keras' convention:
        ``{"digit": y1, "parity": y2}`` trains the outputs named so, with the losses given by the same
        names) or a list of label arrays (matched to the outputs by position).

        Any numeric dtype (bool, u/int8-64, float16/32/64) is stored as it is: uint8 images stay one
        byte per value on disk and are cast to the model's input dtype while training. Each row keeps its
        shape (images stay images). The driver writes the Parquet files itself, row group by row group,
        with no Spark job; when the same arrays were converted before, even in another session, nothing
        is written at all.
        """
        if isinstance(x, Mapping):
            raise DatasetError(writers.SEVERAL_INPUTS)
        x = writers.as_array("x", x)
        several = labels.several_labels(y)
        if several is not None:
            named = [(name, writers.as_array(labels.label_name(name, i), v)) for i, (name, v) in enumerate(several)]
            layout = writers.plan_layout(x.dtype, x.shape, None, None)
            layout = writers.plan_outputs(layout, int(x.shape[0]), [(n, v.dtype, v.shape) for n, v in named])
            targets: Any = {column: v for (column, _, _), (_, v) in zip(layout.outputs, named, strict=True)}
        else:
            targets = None if y is None else writers.as_array("y", y)
            layout = writers.plan_layout(
                x.dtype, x.shape, None if targets is None else targets.dtype, None if targets is None else targets.shape
            )
        given = targets if isinstance(targets, dict) else {} if targets is None else {"label": targets}
        key = numpy_fingerprint({"features": x, **given}, layout.key_options())
        return cls._convert_arrays(x, targets, layout, key, spark, cache_dir)

    @classmethod
    def from_hdf5(
        cls,
        path: str,
        *,
        x: str = "x",
        y: str | Sequence[str] | Mapping[str, str] | None = "y",
        spark: SparkSession | None = None,
        cache_dir: str | None = None,
    ) -> Dataset:
        """Convert two datasets of an HDF5 file: features ``x`` and labels ``y`` (names inside the file).
        For several outputs, ``y`` is a dict of output name to HDF5 name, or a list of HDF5 names, as
        :meth:`from_numpy` takes label arrays.

        The file is read slice by slice, so a file larger than the notebook's memory converts with the
        memory of a few row groups; dtypes are kept as in :meth:`from_numpy`.
        """
        import h5py

        if not os.path.isfile(path):
            raise DatasetError(f"no HDF5 file at {path!r}: check the path")
        with h5py.File(path, "r") as f:
            x_data = writers.hdf5_dataset(f, path, x)
            y_data: Any = None
            if isinstance(y, str):
                y_data = writers.hdf5_dataset(f, path, y)
                layout = writers.plan_layout(x_data.dtype, x_data.shape, y_data.dtype, y_data.shape)
            else:
                layout = writers.plan_layout(x_data.dtype, x_data.shape, None, None)
                several: list[tuple[str | None, str]] = (
                    list(y.items()) if isinstance(y, Mapping) else [(None, inner) for inner in y or []]
                )
                if several:
                    found = [(name, writers.hdf5_dataset(f, path, inner)) for name, inner in several]
                    layout = writers.plan_outputs(
                        layout, int(x_data.shape[0]), [(n, d.dtype, tuple(d.shape)) for n, d in found]
                    )
                    y_data = {column: d for (column, _, _), (_, d) in zip(layout.outputs, found, strict=True)}
            options = {**layout.key_options(), "x": x, "y": y}
            key = files_fingerprint("hdf5", [(os.path.basename(path), path)], options)
            return cls._convert_arrays(x_data, y_data, layout, key, spark, cache_dir)

    @classmethod
    def from_images(
        cls,
        folder: str,
        *,
        image_size: tuple[int, int],
        color_mode: str = "rgb",
        spark: SparkSession | None = None,
        cache_dir: str | None = None,
    ) -> Dataset:
        """Convert a folder of images with one sub-folder per class (``folder/cat/1.jpg``, ``folder/dog/2.png``).

        Every JPEG/PNG/BMP/GIF image is resized to ``image_size`` (height, width) and stored as uint8 of
        shape (height, width, channels): ``color_mode`` ``"rgb"`` (3 channels), ``"grayscale"`` (1) or
        ``"rgba"`` (4); every image is converted to that mode. Labels are the index of the sub-folder in
        sorted order; :attr:`class_names` holds the names. Files are read one row group at a time.
        """
        from occam.data import images

        found = images.find_images(folder)
        layout = images.layout(found, image_size, color_mode)
        options = {**layout.key_options(), "classes": list(found.class_names), "color_mode": color_mode}
        key = files_fingerprint("images", found.named_files(), options)
        final = os.path.join(cache_root(cache_dir), key)
        _check_driver_writes(spark, os.path.dirname(final))
        cached = cls._load(final)
        if cached is not None:
            return cached
        group = writers.rows_per_group(len(found.files), layout.row_bytes)
        metadata = {**layout.metadata(), "class_names": list(found.class_names)}
        writers.write_arrays(final, layout, images.read_slices(found, layout, color_mode, group), metadata)
        return cls._loaded(final)

    @classmethod
    def _convert_arrays(
        cls,
        x: Any,
        y: Any,
        layout: ArrayLayout,
        key: str,
        spark: SparkSession | None,
        cache_dir: str | None,
    ) -> Dataset:
        final = os.path.join(cache_root(cache_dir), key)
        _check_driver_writes(spark, os.path.dirname(final))
        cached = cls._load(final)
        if cached is not None:
            return cached
        num_rows = int(x.shape[0])
        group = writers.rows_per_group(num_rows, layout.row_bytes)
        slices = writers.array_slices(x, y, num_rows, group)
        writers.write_arrays(final, layout, slices, layout.metadata())
        return cls._loaded(final)

    @classmethod
    def _loaded(cls, path: str) -> Dataset:
        loaded = cls._load(path)
        if loaded is None:  # pragma: no cover - only if the cache directory is being deleted under us
            raise DatasetError(f"the converted data vanished from {path}; is something cleaning the cache?")
        return loaded

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
                **({"outputs": options["outputs"]} if "outputs" in options else {}),
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
        classes = meta.get("class_names")
        outputs = tuple((str(c), None if n is None else str(n), d) for c, n, d in meta.get("outputs") or [])
        return cls(
            path=path,
            features=meta["features"],
            label=meta["label"],
            feature_shape=tuple(shape) if shape is not None else None,
            num_rows=int(meta["num_rows"]),
            columns=dict(meta["columns"]),
            key=os.path.basename(path),
            feature_dtype=meta.get("feature_dtype"),
            label_dtype=meta.get("label_dtype"),
            class_names=tuple(classes) if classes is not None else None,
            outputs=outputs,
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

    def to_numpy(self) -> tuple[np.ndarray, Any]:
        """All rows in memory, in their stored dtype and shape: for evaluation and small data. The labels are
        one array, or for several outputs a dict (or list) of arrays as they were given; None without labels."""
        return self.read_files(self.file_urls())

    def read_files(self, urls: list[str]) -> tuple[np.ndarray, Any]:
        """The rows of some of this dataset's files (:meth:`file_urls`), in order, as ``to_numpy`` gives them."""
        pq = guarded_parquet()

        table = pq.read_table([url.removeprefix("file://") for url in urls])
        column = table.column(self.features).combine_chunks()
        layout = self.layout
        if layout is not None:
            x = writers.decode_features(column, layout)
        elif hasattr(column, "flatten"):  # an array column: one fixed-length list per row
            x = column.flatten().to_numpy(zero_copy_only=False).reshape(len(column), -1)
        else:
            x = column.to_numpy(zero_copy_only=False)
        if layout is None and self.feature_shape:
            x = x.reshape((len(x), *self.feature_shape))
        dtypes = [d for _, _, d in self.outputs] if self.outputs else [self.label_dtype]
        values = [
            labels.as_dtype(table.column(column).combine_chunks().to_numpy(zero_copy_only=False), dtype)
            for column, dtype in zip(self.label_columns, dtypes, strict=False)
        ]
        return x, self.labels_as_keras_takes_them(values) if values else None

    def split(self, fraction: float, *, seed: int = 42, spark: SparkSession | None = None) -> tuple[Dataset, Dataset]:
        """Split into two datasets holding about ``fraction`` and ``1 - fraction`` of the rows.

        Each row goes to the first part with probability ``fraction`` (the same rows for the same
        ``seed``); the driver copies row group by row group, with no Spark job and bounded memory.
        """
        if not 0 < fraction < 1:
            raise DatasetError(f"split fraction {fraction!r} must be between 0 and 1, e.g. 0.8")
        pq = guarded_parquet()

        root = os.path.dirname(self.path)
        finals = [os.path.join(root, _child_key(self.key, f"split-{fraction}-{seed}-{i}")) for i in range(2)]
        if all(Dataset._load(final) is not None for final in finals):
            return Dataset._loaded(finals[0]), Dataset._loaded(finals[1])
        with open(os.path.join(self.path, METADATA_FILE)) as fh:
            metadata = {k: v for k, v in json.load(fh).items() if k != "num_rows"}
        rng = np.random.default_rng(seed)
        with writers.StagedWrite(finals[0]) as first, writers.StagedWrite(finals[1]) as second:
            for url in self.file_urls():
                source = pq.ParquetFile(url.removeprefix("file://"))
                for group in range(source.num_row_groups):
                    table = source.read_row_group(group)
                    mask = rng.random(table.num_rows) < fraction
                    first.write(table.filter(mask))
                    second.write(table.filter(~mask))
            if first.rows == 0 or second.rows == 0:
                raise DatasetError(
                    f"splitting {self.num_rows} rows at {fraction} leaves a part empty: use more data or a "
                    "fraction nearer 0.5"
                )
            first.commit(metadata)
            second.commit(metadata)
        return Dataset._loaded(finals[0]), Dataset._loaded(finals[1])

    def _repr_html_(self) -> str:
        def e(value: object) -> str:
            return html.escape(str(value))

        cols = ", ".join(f"{e(k)}: {e(v)}" for k, v in self.columns.items())
        classes = f"; classes {e(', '.join(self.class_names))}" if self.class_names else ""
        return (
            f"<div><strong>Occam dataset</strong> {e(self.num_rows)} rows; {cols}; "
            f"features shape {e(self.feature_shape or '-')}{classes}<br><small>{e(self.path)}</small></div>"
        )


def _check_driver_writes(spark: SparkSession | None, root: str) -> None:
    """The driver writes the files and the executors read them: on a cluster whose executors do not
    share the driver's files, refuse before writing (with no Spark session there is no cluster)."""
    _check_shared(spark or _session_if_any(), root)


def _child_key(parent: str, suffix: str) -> str:
    import hashlib

    return hashlib.sha256(f"{parent}/{suffix}".encode()).hexdigest()[:32]


def _parquet_rows(path: str) -> int:
    pq = guarded_parquet()

    files = [os.path.join(path, f) for f in os.listdir(path) if f.endswith(".parquet")]
    return sum(pq.ParquetFile(f).metadata.num_rows for f in files)
