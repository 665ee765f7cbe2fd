"""Arrays to Parquet on the driver (occam/data/writers.py through Dataset.from_numpy / from_hdf5): every dtype
round-trips, uint8 stays one byte on disk, bad input is refused before anything is written, a failed or
killed conversion leaves no cache entry, and an HDF5 file converts with bounded memory. No Spark."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow", reason="the writer is pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from occam.data import writers  # noqa: E402
from occam.data.dataset import Dataset  # noqa: E402
from occam.errors import DatasetError  # noqa: E402

DTYPES = ["bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64"]
DTYPES += ["float16", "float32", "float64"]


def cifar_like(rows: int = 200, dtype: str = "uint8", seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = (rng.random((rows, 32, 32, 3)) * 120).astype(dtype)
    return x, (np.arange(rows) % 10).astype(dtype)


def entries(cache: str) -> list[str]:
    root = os.path.join(cache, "datasets")
    return sorted(os.listdir(root)) if os.path.isdir(root) else []


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_numeric_dtype_round_trips(tmp_path, dtype):
    x, y = cifar_like(dtype=dtype)
    data = Dataset.from_numpy(x, y, cache_dir=str(tmp_path))
    back_x, back_y = data.to_numpy()
    assert back_x.dtype == x.dtype and back_x.shape == x.shape
    np.testing.assert_array_equal(back_x, x)
    assert back_y is not None and back_y.dtype == y.dtype
    np.testing.assert_array_equal(back_y, y)
    assert data.feature_shape == (32, 32, 3) and data.feature_dtype == dtype and len(data) == 200


def test_uint8_images_stay_one_byte_per_value_on_disk(tmp_path):
    x, y = cifar_like()
    data = Dataset.from_numpy(x, y, cache_dir=str(tmp_path))
    files = [url.removeprefix("file://") for url in data.file_urls()]
    assert len(files) >= writers.MIN_FILES, "each rank needs row groups of its own"
    schema = pq.read_schema(files[0])
    assert schema.field("features").type == pa.binary(32 * 32 * 3)
    assert schema.field("label").type == pa.uint8()
    assert sum(os.path.getsize(f) for f in files) < 1.5 * x.nbytes
    assert data.schema == {"features": "uint8[32, 32, 3]", "label": "uint8"}


def test_labels_are_stored_as_a_type_petastorm_reads_and_returned_as_given(tmp_path):
    x = np.zeros((20, 2), dtype=np.float32)
    data = Dataset.from_numpy(x, np.arange(20, dtype=np.uint16), cache_dir=str(tmp_path))
    schema = pq.read_schema(data.file_urls()[0].removeprefix("file://"))
    assert schema.field("label").type == pa.int32()
    assert data.to_numpy()[1].dtype == np.uint16


def test_one_value_per_row_and_no_labels(tmp_path):
    x = np.linspace(0, 1, 50).astype(np.float64)
    data = Dataset.from_numpy(x, cache_dir=str(tmp_path))
    back, labels = data.to_numpy()
    assert labels is None and data.label is None
    np.testing.assert_array_equal(back, x)


def test_same_content_is_one_cache_entry_and_split_is_stable(tmp_path):
    x, y = cifar_like()
    first = Dataset.from_numpy(x, y, cache_dir=str(tmp_path))
    again = Dataset.from_numpy(x.copy(), list(y), cache_dir=str(tmp_path))
    assert again.path == first.path and entries(str(tmp_path)) == [first.key]
    train, val = first.split(0.75, seed=3)
    assert len(train) + len(val) == 200 and 120 < len(train) < 180
    assert train.feature_dtype == "uint8" and train.feature_shape == (32, 32, 3)
    assert (train.path, val.path) == tuple(d.path for d in first.split(0.75, seed=3))
    train_x, _ = train.to_numpy()
    val_x, _ = val.to_numpy()
    assert sorted(map(bytes, np.concatenate([train_x, val_x]))) == sorted(map(bytes, x))


@pytest.mark.parametrize(
    ("x", "y", "message"),
    [
        (np.array([["a"], ["b"]]), None, r"x has dtype <U1, which cannot be stored: .*astype"),
        (np.array([1, "b"], dtype=object), None, "x has dtype object.*ragged or mixed rows"),
        ([[1, 2], [3]], None, "x is ragged"),
        (np.zeros((0, 3)), None, r"x is empty \(shape \(0, 3\)\)"),
        (np.float32(1.0), None, "x is a single value, not rows"),
        (np.zeros((4, 0)), None, "rows of no values"),
        (np.zeros((3, 2)), np.zeros(2), "x has 3 rows but y has 2"),
        (np.zeros((3, 2)), np.zeros((3, 10)), r"one label per row .*argmax"),
        (np.zeros((3, 2)), np.array(["a", "b", "c"]), "y has dtype <U1"),
        (np.zeros((3, 2), dtype=np.complex64), None, "complex64, which cannot be stored"),
    ],
)
def test_unsupported_input_is_refused_before_anything_is_written(tmp_path, x, y, message):
    with pytest.raises(DatasetError, match=message):
        Dataset.from_numpy(x, y, cache_dir=str(tmp_path))
    assert entries(str(tmp_path)) == []


def test_a_conversion_that_fails_midway_leaves_no_cache_entry(tmp_path, monkeypatch):
    x, y = cifar_like()
    calls = []
    real_encode = writers.encode

    def failing_encode(*args):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("disk full")
        return real_encode(*args)

    monkeypatch.setattr(writers, "encode", failing_encode)
    with pytest.raises(RuntimeError, match="disk full"):
        Dataset.from_numpy(x, y, cache_dir=str(tmp_path))
    assert entries(str(tmp_path)) == [], "neither an entry nor its staging directory is left"
    monkeypatch.setattr(writers, "encode", real_encode)
    assert len(Dataset.from_numpy(x, y, cache_dir=str(tmp_path))) == 200


def test_a_conversion_killed_midway_leaves_no_cache_entry(tmp_path):
    code = textwrap.dedent(
        f"""
        import os, signal, numpy as np
        from occam.data import writers
        from occam.data.dataset import Dataset
        real, calls = writers.encode, []
        def encode(*args):
            calls.append(1)
            if len(calls) == 3:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(*args)
        writers.encode = encode
        x = np.zeros((200, 8), dtype=np.uint8)
        Dataset.from_numpy(x, np.arange(200), cache_dir={str(tmp_path)!r})
        """
    )
    killed = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    assert killed.returncode == -9
    (left,) = entries(str(tmp_path))
    assert left.startswith(".") and left.endswith(".tmp"), "only a hidden staging directory is left"
    stale = os.path.join(tmp_path, "datasets", left)
    os.utime(stale, (1, 1))  # as if left by a kernel killed long ago
    data = Dataset.from_numpy(np.zeros((200, 8), dtype=np.uint8), np.arange(200), cache_dir=str(tmp_path))
    assert len(data) == 200 and os.path.exists(os.path.join(data.path, writers.METADATA_FILE))
    assert entries(str(tmp_path)) == [data.key], "the next conversion of the same data removed the stale one"


def test_rows_per_group_gives_every_rank_files_and_bounds_group_bytes():
    assert writers.rows_per_group(200, 3072) == 13
    assert writers.rows_per_group(5, 3072) == 1
    big = writers.rows_per_group(10_000_000, 3072)
    assert big * 3072 <= writers.TARGET_GROUP_BYTES


def test_the_html_repr_escapes_every_value(tmp_path):
    data = Dataset(
        path="/tmp/<script>alert(1)</script>",
        features="f<b>",
        label="y",
        feature_shape=(2,),
        num_rows=3,
        columns={"f<b>": "float32[2]", "y": "<i>int64</i>"},
        key="k",
        class_names=("cat & dog", "<bird>"),
    )
    shown = data._repr_html_()
    assert "<script>" not in shown and "<b>" not in shown and "<i>" not in shown and "<bird>" not in shown
    assert "&lt;script&gt;" in shown and "cat &amp; dog" in shown and "&lt;bird&gt;" in shown


class TestHdf5:
    h5py = pytest.importorskip("h5py")

    def test_round_trip_and_missing_names(self, tmp_path):
        x, y = cifar_like()
        path = str(tmp_path / "train.h5")
        with self.h5py.File(path, "w") as f:
            f["images"] = x
            f["group/labels"] = y
            ragged = f.create_dataset("ragged", (2,), dtype=self.h5py.vlen_dtype(np.float32))
            ragged[0], ragged[1] = np.zeros(2, dtype=np.float32), np.zeros(3, dtype=np.float32)
        data = Dataset.from_hdf5(path, x="images", y="group/labels", cache_dir=str(tmp_path / "cache"))
        back_x, back_y = data.to_numpy()
        np.testing.assert_array_equal(back_x, x)
        np.testing.assert_array_equal(back_y, y)
        with pytest.raises(DatasetError, match=r"has no dataset 'x'; it has \['group/labels', 'images', 'ragged'\]"):
            Dataset.from_hdf5(path, cache_dir=str(tmp_path / "cache"))
        with pytest.raises(DatasetError, match="has no dataset 'group'"):
            Dataset.from_hdf5(path, x="group", y=None, cache_dir=str(tmp_path / "cache"))
        with pytest.raises(DatasetError, match="x has dtype object.*ragged"):
            Dataset.from_hdf5(path, x="ragged", y=None, cache_dir=str(tmp_path / "cache"))
        with pytest.raises(DatasetError, match="no HDF5 file at"):
            Dataset.from_hdf5(str(tmp_path / "nope.h5"))
        assert entries(str(tmp_path / "cache")) == [data.key]

    def test_a_file_larger_than_a_few_row_groups_converts_with_bounded_memory(self, tmp_path):
        """~130 MB of uint8 images: the conversion's peak RSS grows by well under the file's size."""
        path = str(tmp_path / "big.h5")
        rows, block = 42_000, 2_000
        with self.h5py.File(path, "w") as f:
            images = f.create_dataset("x", shape=(rows, 32, 32, 3), dtype=np.uint8)
            labels = f.create_dataset("y", shape=(rows,), dtype=np.int64)
            rng = np.random.default_rng(1)
            for start in range(0, rows, block):
                images[start : start + block] = rng.integers(0, 256, (block, 32, 32, 3), dtype=np.uint8)
                labels[start : start + block] = np.arange(start, start + block) % 10
        size = os.path.getsize(path)
        code = textwrap.dedent(
            f"""
            import json, h5py, pyarrow.parquet, pyspark.sql  # imports are not the conversion
            from occam.data import writers
            from occam.data.dataset import Dataset

            def status(field):  # KiB. VmHWM: peak RSS of this process (ru_maxrss includes the parent at fork)
                return int(open('/proc/self/status').read().split(field + ':')[1].split()[0])

            def rss():
                return status('VmRSS')

            writers.TARGET_GROUP_BYTES = 4 * 1024 * 1024  # 32 row groups of 4 MB: the file is many of them
            real_write, after_first = writers.StagedWrite.write, []

            def write(self, table):
                real_write(self, table)
                after_first.append(after_first[0] if after_first else rss())

            writers.StagedWrite.write = write
            open('/proc/self/clear_refs', 'w').write('5')  # resets VmHWM to the current RSS
            before = rss()
            data = Dataset.from_hdf5({path!r}, cache_dir={str(tmp_path / "cache")!r})
            peak = status('VmHWM')
            print(json.dumps({{"growth": (peak - before) * 1024, "after_first": (peak - after_first[0]) * 1024,
                              "groups": len(after_first), "rows": len(data)}}))
            """
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
        measured = json.loads(out.stdout.strip().splitlines()[-1])
        assert measured["rows"] == rows and measured["groups"] >= 30
        assert size > 120e6
        shown = {k: f"{v / 1e6:.0f} MB" for k, v in measured.items() if k in ("growth", "after_first")}
        # One-time set-up (Arrow's allocator, the Parquet writer) comes with the first row group; after it,
        # memory must not grow with the file: less than a few row groups more over the other 31.
        assert measured["after_first"] < 6 * 4 * 1024 * 1024, f"{shown} for a {size / 1e6:.0f} MB file"
        # In all: that set-up (about 60 MB here) and a few row groups, well under the file's 129 MB.
        assert measured["growth"] < 96 * 1024 * 1024, f"{shown} for a {size / 1e6:.0f} MB file"


def test_several_outputs_keep_one_label_column_each_and_come_back_as_given(tmp_path):
    x, y = cifar_like(rows=40)
    labels = {"digit": y.astype(np.int64), "parity": (y % 2).astype(np.float32)}
    named = Dataset.from_numpy(x, labels, cache_dir=str(tmp_path))
    assert named.label is None and named.labelled and named.label_columns == ("label_0", "label_1")
    assert named.schema == {"features": "uint8[32, 32, 3]", "label_0": "int64", "label_1": "float32"}
    _, back = named.to_numpy()
    assert list(back) == ["digit", "parity"] and back["parity"].dtype == np.float32
    np.testing.assert_array_equal(back["digit"], labels["digit"])
    by_position = Dataset.from_numpy(x, list(labels.values()), cache_dir=str(tmp_path))
    assert by_position.key != named.key, "output names are part of the cache key"
    _, listed = by_position.to_numpy()
    assert isinstance(listed, list) and len(listed) == 2
    np.testing.assert_array_equal(listed[1], labels["parity"])
    # A plain list of numbers is still one label per row.
    single = Dataset.from_numpy(x[:3], [1, 2, 3], cache_dir=str(tmp_path))
    assert single.label == "label" and single.to_numpy()[1].tolist() == [1, 2, 3]


def test_several_outputs_from_hdf5(tmp_path):
    h5py = pytest.importorskip("h5py")
    x, y = cifar_like(rows=30)
    path = tmp_path / "two.h5"
    with h5py.File(path, "w") as f:
        f["images"], f["digit"], f["parity"] = x, y, y % 2
    data = Dataset.from_hdf5(str(path), x="images", y={"digit": "digit", "odd": "parity"}, cache_dir=str(tmp_path))
    _, back = data.to_numpy()
    np.testing.assert_array_equal(back["odd"], y % 2)
    with pytest.raises(DatasetError, match="no dataset 'nope'"):
        Dataset.from_hdf5(str(path), x="images", y=["digit", "nope"], cache_dir=str(tmp_path))


@pytest.mark.parametrize(
    ("x", "y", "message"),
    [
        ({"image": np.zeros((4, 2))}, None, "several inputs are not supported"),
        (np.zeros((4, 2)), {"a": np.zeros(3)}, r"x has 4 rows but y\['a'\] has 3"),
        (np.zeros((4, 2)), {"a": np.zeros((4, 2))}, r"y\['a'\] must be one label per row"),
        (np.zeros((4, 2)), {}, "empty dict or list"),
        (np.zeros((4, 2)), [np.zeros(4), np.array(["a"] * 4)], r"y\[1\] has dtype <U1"),
    ],
)
def test_bad_multi_output_labels_are_refused_before_anything_is_written(tmp_path, x, y, message):
    with pytest.raises(DatasetError, match=message):
        Dataset.from_numpy(x, y, cache_dir=str(tmp_path))
    assert entries(str(tmp_path)) == []
