"""A folder of images, one sub-folder per class (Keras' ``image_dataset_from_directory`` layout), as arrays.

Files are found first (names only), then decoded a row group at a time with Pillow, so memory stays at
one row group of resized uint8 images however many files there are.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from occam.data.writers import ArrayLayout
from occam.errors import DatasetError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
#: Pillow's mode and the channels of each ``color_mode``.
COLOR_MODES = {"rgb": ("RGB", 3), "grayscale": ("L", 1), "rgba": ("RGBA", 4)}


@dataclass(frozen=True)
class ImageFiles:
    """The images found under a folder: each file with the index of its class (sorted sub-folder names)."""

    folder: str
    class_names: tuple[str, ...]
    files: tuple[tuple[str, int], ...]

    def named_files(self) -> list[tuple[str, str]]:
        """``(path relative to the folder, path)`` per file: what the cache key hashes."""
        return [(os.path.relpath(path, self.folder), path) for path, _ in self.files]


def find_images(folder: str) -> ImageFiles:
    """Every image file in ``folder``'s class sub-folders (searched recursively), in a stable order."""
    if not os.path.isdir(folder):
        raise DatasetError(f"no folder at {folder!r}: pass the folder that holds one sub-folder per class")
    classes = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir() and not entry.name.startswith("."))
    if not classes:
        raise DatasetError(
            f"{folder} has no class folders: put the images of each class in a sub-folder named after it "
            f"({folder}/cat/1.jpg, {folder}/dog/2.jpg)"
        )
    files: list[tuple[str, int]] = []
    for label, name in enumerate(classes):
        for root, dirs, names in os.walk(os.path.join(folder, name)):
            dirs.sort()
            files.extend(
                (os.path.join(root, file), label) for file in sorted(names) if file.lower().endswith(IMAGE_EXTENSIONS)
            )
    if not files:
        raise DatasetError(
            f"the class folders of {folder} ({', '.join(classes)}) hold no images: "
            f"expected files ending in {', '.join(IMAGE_EXTENSIONS)}"
        )
    return ImageFiles(folder=folder, class_names=tuple(classes), files=tuple(files))


def layout(found: ImageFiles, image_size: tuple[int, int], color_mode: str) -> ArrayLayout:
    """uint8 images of ``image_size`` in ``color_mode``'s channels, int64 labels."""
    if color_mode not in COLOR_MODES:
        raise DatasetError(f"color_mode {color_mode!r} is not one of {sorted(COLOR_MODES)}: pick one")
    if len(image_size) != 2 or not all(isinstance(d, int) and d > 0 for d in image_size):
        raise DatasetError(f"image_size {image_size!r} must be (height, width) in pixels, e.g. (32, 32)")
    _, channels = COLOR_MODES[color_mode]
    return ArrayLayout(feature_dtype="uint8", feature_shape=(*image_size, channels), label_dtype="int64")


def read_image(path: str, image_size: tuple[int, int], color_mode: str) -> np.ndarray:
    """One image, converted to ``color_mode`` and resized to ``image_size``, as uint8 (height, width, channels)."""
    from PIL import Image, UnidentifiedImageError

    mode, channels = COLOR_MODES[color_mode]
    height, width = image_size
    try:
        with Image.open(path) as image:
            converted = image.convert(mode).resize((width, height), Image.Resampling.BILINEAR)
            pixels = np.asarray(converted, dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise DatasetError(f"cannot read the image {path}: {exc}. Remove or replace that file") from None
    return pixels.reshape(height, width, channels)


def read_slices(
    found: ImageFiles, layout: ArrayLayout, color_mode: str, group_rows: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The images and labels, ``group_rows`` at a time."""
    size = (layout.feature_shape[0], layout.feature_shape[1])
    for start in range(0, len(found.files), group_rows):
        chunk = found.files[start : start + group_rows]
        x = np.empty((len(chunk), *layout.feature_shape), dtype=np.uint8)
        for row, (path, _) in enumerate(chunk):
            x[row] = read_image(path, size, color_mode)
        yield x, np.array([label for _, label in chunk], dtype=np.int64)
