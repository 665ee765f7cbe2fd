"""Dataset.from_images (occam/data/images.py) on generated PNG and JPEG files: resized uint8 images, labels
from sorted class folders, and errors that name the folder or file to fix. No Spark."""

from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("pyarrow", reason="the writer is pyarrow")
Image = pytest.importorskip("PIL.Image", reason="images are read with Pillow")

from occam.data import images  # noqa: E402
from occam.data.dataset import Dataset  # noqa: E402
from occam.errors import DatasetError  # noqa: E402


def save(path, color: tuple[int, ...], mode: str = "RGB", size: tuple[int, int] = (40, 30)) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new(mode, size, color).save(path)


@pytest.fixture
def folder(tmp_path):
    """Two classes in Keras' layout; PNG and JPEG, RGB, RGBA and grayscale, several sizes, one nested."""
    root = tmp_path / "pets"
    for i in range(3):
        save(str(root / "dog" / f"{i}.png"), (250, 10, 10))
        save(str(root / "cat" / f"{i}.jpg"), (10, 10, 250), size=(64, 48))
    save(str(root / "cat" / "gray.png"), (128,), mode="L")
    save(str(root / "dog" / "nested" / "alpha.png"), (250, 10, 10, 255), mode="RGBA")
    (root / "dog" / "notes.txt").write_text("not an image")
    return root


def test_images_are_resized_uint8_with_labels_from_sorted_folders(folder, tmp_path):
    data = Dataset.from_images(str(folder), image_size=(16, 20), cache_dir=str(tmp_path / "cache"))
    assert data.class_names == ("cat", "dog")
    assert data.schema == {"features": "uint8[16, 20, 3]", "label": "int64"}
    x, y = data.to_numpy()
    assert x.dtype == np.uint8 and x.shape == (8, 16, 20, 3)
    assert y is not None and sorted(y.tolist()) == [0, 0, 0, 0, 1, 1, 1, 1]
    cats, dogs = x[y == 0], x[y == 1]
    assert (dogs[..., 0] > 200).all() and (dogs[..., 2] < 50).all()
    assert (cats[:3, ..., 2] > 200).all(), "the JPEG cats are blue"
    assert (cats[3] == 128).all(), "grayscale becomes RGB"
    assert "cat, dog" in data._repr_html_()


def test_color_modes_and_the_cache(folder, tmp_path):
    cache = str(tmp_path / "cache")
    gray = Dataset.from_images(str(folder), image_size=(8, 8), color_mode="grayscale", cache_dir=cache)
    assert gray.feature_shape == (8, 8, 1)
    rgba = Dataset.from_images(str(folder), image_size=(8, 8), color_mode="rgba", cache_dir=cache)
    assert rgba.feature_shape == (8, 8, 4)
    assert Dataset.from_images(str(folder), image_size=(8, 8), color_mode="grayscale", cache_dir=cache) == gray
    save(str(folder / "cat" / "new.png"), (0, 0, 0))
    changed = Dataset.from_images(str(folder), image_size=(8, 8), color_mode="grayscale", cache_dir=cache)
    assert changed.key != gray.key and len(changed) == len(gray) + 1
    with pytest.raises(DatasetError, match="color_mode 'cmyk' is not one of"):
        Dataset.from_images(str(folder), image_size=(8, 8), color_mode="cmyk", cache_dir=cache)
    with pytest.raises(DatasetError, match=r"image_size \(8,\) must be \(height, width\)"):
        Dataset.from_images(str(folder), image_size=(8,), cache_dir=cache)  # type: ignore[arg-type]


def test_images_are_read_a_row_group_at_a_time(folder, monkeypatch):
    found = images.find_images(str(folder))
    layout = images.layout(found, (8, 8), "rgb")
    read = []
    real = images.read_image
    monkeypatch.setattr(images, "read_image", lambda *a: read.append(a[0]) or real(*a))
    slices = images.read_slices(found, layout, "rgb", group_rows=3)
    x, y = next(slices)
    assert x.shape == (3, 8, 8, 3) and len(read) == 3
    assert sum(len(x) for x, _ in slices) == 5


def test_folder_problems_name_the_fix(tmp_path):
    with pytest.raises(DatasetError, match="no folder at"):
        Dataset.from_images(str(tmp_path / "missing"), image_size=(8, 8))
    (tmp_path / "flat").mkdir()
    save(str(tmp_path / "flat" / "a.png"), (1, 2, 3))
    with pytest.raises(DatasetError, match="has no class folders: put the images of each class in a sub-folder"):
        Dataset.from_images(str(tmp_path / "flat"), image_size=(8, 8))
    (tmp_path / "empty" / "cat").mkdir(parents=True)
    (tmp_path / "empty" / "cat" / "readme.md").write_text("hi")
    with pytest.raises(DatasetError, match=r"\(cat\) hold no images"):
        Dataset.from_images(str(tmp_path / "empty"), image_size=(8, 8))


def test_an_unreadable_file_is_named_and_nothing_is_cached(folder, tmp_path):
    broken = folder / "dog" / "broken.jpg"
    broken.write_bytes(b"this is not a jpeg")
    cache = tmp_path / "cache"
    with pytest.raises(DatasetError, match=f"cannot read the image {broken}: .*Remove or replace that file"):
        Dataset.from_images(str(folder), image_size=(8, 8), cache_dir=str(cache))
    assert os.listdir(cache / "datasets") == [], "the staging directory went with the error"
