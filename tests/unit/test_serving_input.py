"""What a model service makes of a client's input (occam.models.deepaas_model), without TensorFlow: JSON arrays,
image files (real PNG/JPEG bytes through Pillow), the top classes, and where JupyterHub's proxy serves a port."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from occam import links
from occam.models.deepaas_model import BadInput, StoreModel, image_to_array, instances_to_array, top_classes

SHAPE = (8, 8, 1)


def encoded(image: Image.Image, kind: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=kind)
    return buffer.getvalue()


def test_one_example_or_a_batch_of_them_as_a_batch() -> None:
    one = np.arange(64, dtype=np.float32).reshape(SHAPE)
    assert instances_to_array(one.tolist(), SHAPE, "float32").shape == (1, 8, 8, 1)
    batch = instances_to_array([one.tolist()] * 3, SHAPE, "float32")
    assert batch.shape == (3, 8, 8, 1) and batch.dtype == np.float32 and np.array_equal(batch[2], one)
    # A form field carries the array as JSON text.
    assert instances_to_array("[" + str(one.tolist()) + "]", SHAPE, "float32").shape == (1, 8, 8, 1)
    # A dimension of any size (None) takes any size.
    assert instances_to_array([[1, 2, 3]], (None,), "int64").shape == (1, 3)


@pytest.mark.parametrize(
    ("instances", "message"),
    [
        ([1.0, 2.0, 3.0], r"has shape \(3,\); send .*\(8, 8, 1\) or \(n, 8, 8, 1\)"),
        ([[[1.0]]], r"has shape \(1, 1, 1\)"),
        ([[1.0, 2.0], [3.0]], "not a rectangular array of numbers"),
        ([["a", "b"]], "not a rectangular array of numbers"),
        ("[1, 2", "not valid JSON"),
        ([], r"has shape \(0,\)"),
    ],
)
def test_arrays_that_cannot_be_an_input_say_what_is_expected(instances: object, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        instances_to_array(instances, SHAPE, "float32")


def test_an_image_is_resized_converted_and_scaled_to_the_input() -> None:
    pixels = np.zeros((16, 16), dtype=np.uint8)
    pixels[:, 8:] = 255
    batch = image_to_array(encoded(Image.fromarray(pixels, mode="L")), SHAPE, "float32")
    assert batch.shape == (1, 8, 8, 1) and batch.dtype == np.float32
    assert np.allclose(batch[0, :, :3, 0], 0.0) and np.allclose(batch[0, :, 5:, 0], 1.0)  # resampling blurs the edge
    # Colour to greyscale, JPEG too; an integer input keeps 0-255; three channels stay three.
    rgb = Image.new("RGB", (5, 7), (255, 255, 255))
    assert np.allclose(image_to_array(encoded(rgb, "JPEG"), SHAPE, "float32"), 1.0)
    assert image_to_array(encoded(rgb), (4, 4, 3), "uint8").max() == 255


def test_what_is_not_an_image_or_not_an_image_model_is_refused() -> None:
    with pytest.raises(BadInput, match="not an image Pillow can read.*multipart field 'data'"):
        image_to_array(b"\x89PNG but not really", SHAPE, "float32")
    with pytest.raises(BadInput, match="not an image"):
        image_to_array(encoded(Image.new("L", (4, 4))), (64,), "float32")


def test_a_decompression_bomb_is_refused_before_it_is_decoded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("occam.models.deepaas_model.MAX_IMAGE_PIXELS", 100)
    with pytest.raises(BadInput, match="refused"):
        image_to_array(encoded(Image.new("L", (64, 64))), SHAPE, "float32")


def test_top_classes_best_first_with_labels_and_every_probability() -> None:
    probabilities = np.array([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]])
    first, second = top_classes(probabilities, ["cat", "dog", "eel"], 2)
    assert first["label"] == "dog" and first["probability"] == pytest.approx(0.7)
    assert [t["label"] for t in first["top"]] == ["dog", "eel"] and [t["class"] for t in second["top"]] == [0, 2]
    assert second["probabilities"] == pytest.approx([0.5, 0.2, 0.3])
    # Without labels (or labels that do not fit the output), classes are named by their index.
    assert top_classes(probabilities, ["only one"], 1)[0]["label"] == "1"


def test_the_jupyter_proxy_path_of_a_port() -> None:
    env = {"JUPYTERHUB_SERVICE_PREFIX": "/user/ada/"}
    assert links.proxy_path(4040, "jobs/", environ=env) == "/user/ada/proxy/4040/jobs/"
    assert links.proxy_path(5000, absolute=True, environ=env) == "/user/ada/proxy/absolute/5000/"
    assert links.proxy_path(4040, environ={}) is None


def store_model() -> StoreModel:
    metadata = {"name": "digits", "owner": "ada", "version": 2, "input_shape": [8, 8, 1], "input_dtype": "float32"}
    return StoreModel("/nonexistent/model.keras", {**metadata, "labels": ["a"], "metrics": {"accuracy": 0.5}})


def test_an_upload_is_read_and_its_temporary_file_removed_whatever_the_answer(tmp_path: Path) -> None:
    from deepaas.model.v2.wrapper import UploadedFile

    model = store_model()
    upload = tmp_path / "upload"

    def uploaded() -> UploadedFile:
        upload.write_bytes(encoded(Image.new("L", (8, 8), 255)))
        return UploadedFile(name="data", filename=str(upload), content_type="image/png", original_filename="x.png")

    assert model.input_batch(uploaded(), None).shape == (1, 8, 8, 1) and not upload.exists()
    with pytest.raises(BadInput, match="not both"):
        model.input_batch(uploaded(), [[0.0]])
    assert not upload.exists()
    with pytest.raises(BadInput, match="nothing to predict"):
        model.input_batch(None, None)
    with pytest.raises(BadInput, match="must be a file upload"):
        model.input_batch("just text", None)


def test_metadata_for_the_api() -> None:
    meta = store_model().get_metadata()
    assert meta["id"] == "ada/digits:2" and meta["version"] == "2" and meta["author"] == "ada"
    assert meta["input_shape"] == [8, 8, 1] and meta["labels"] == ["a"] and meta["metrics"] == {"accuracy": 0.5}
    assert "multipart field 'data'" in meta["expected_input"]
