"""A published model behind the DEEPaaS API: the model interface ``deepaas`` serves (metadata, predict arguments,
predict), and the checks that turn what a client sends into the model's input.

DEEPaaS runs ``warm`` and ``predict`` in a worker process of its own (a ``spawn`` pool) and pickles the model
object into every call, so :class:`StoreModel` carries only the model's folder and metadata; the Keras model is
loaded once per worker into :data:`_LOADED`. Everything a client can get wrong raises :class:`BadInput`, which
pickles back to the server, where :mod:`occam.models.serving_app` answers it with a 400 and its message.
Importing this module loads no TensorFlow (only ``warm`` does, in the worker).
"""

from __future__ import annotations

import io
import json
import os
import warnings
from typing import Any

import numpy as np

#: Images larger than this many pixels are refused before they are decoded (a "decompression bomb").
MAX_IMAGE_PIXELS = 25_000_000
#: How many classes each prediction lists, best first, unless the client asks for another ``top_k``.
DEFAULT_TOP_K = 5

#: The worker's loaded Keras models, by model file: loaded by ``warm``, used by every ``predict``.
_LOADED: dict[str, Any] = {}


class BadInput(ValueError):
    """What a client sent cannot be a model input; the message says what is expected (HTTP 400)."""


def expected_input(shape: tuple[int | None, ...], dtype: str) -> str:
    """How the docs and every 400 describe the input: the one-example shape, the batch shape and the dtype."""
    one = "(" + ", ".join("any" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"
    return (
        f"an image file as the multipart field 'data' (resized to the model's input, {one} {dtype}), or a JSON "
        f"array 'instances' of shape {one} or (n, {one[1:]}"
    )


def _matches(actual: tuple[int, ...], expected: tuple[int | None, ...]) -> bool:
    return len(actual) == len(expected) and all(e is None or a == e for a, e in zip(actual, expected, strict=True))


def instances_to_array(instances: Any, shape: tuple[int | None, ...], dtype: str) -> np.ndarray:
    """A JSON array (one example or a batch of them) as the model's input batch, or :class:`BadInput`."""
    if isinstance(instances, str):
        try:
            instances = json.loads(instances)
        except json.JSONDecodeError as exc:
            raise BadInput(f"'instances' is not valid JSON ({exc.msg}); send {expected_input(shape, dtype)}") from None
    try:
        array = np.asarray(instances, dtype=np.dtype(dtype))
    except (ValueError, TypeError):
        raise BadInput(
            f"'instances' is not a rectangular array of numbers; send {expected_input(shape, dtype)}"
        ) from None
    if _matches(array.shape, shape):
        array = array[np.newaxis]
    if not (_matches(array.shape[1:], shape) and array.shape[0] >= 1):
        raise BadInput(f"'instances' has shape {tuple(array.shape)}; send {expected_input(shape, dtype)}")
    return array


def image_to_array(data: bytes, shape: tuple[int | None, ...], dtype: str) -> np.ndarray:
    """An image file (PNG, JPEG...) as a batch of one, resized and converted to the model's input.

    The input must be (height, width, channels) with 1 (greyscale) or 3 (RGB) channels. A floating-point input
    gets pixels scaled to [0, 1], as Occam's image datasets are (``Dataset.from_images``); an integer one gets 0-255.
    """
    from PIL import Image, UnidentifiedImageError

    if len(shape) != 3 or shape[2] not in (1, 3) or shape[0] is None or shape[1] is None:
        raise BadInput(f"this model's input {shape} is not an image (height, width, 1 or 3); send 'instances'")
    height, width, channels = int(shape[0]), int(shape[1]), int(shape[2])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            previous, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, MAX_IMAGE_PIXELS
            try:
                with Image.open(io.BytesIO(data)) as image:
                    image.load()
                    converted = image.convert("L" if channels == 1 else "RGB").resize((width, height))
            finally:
                Image.MAX_IMAGE_PIXELS = previous
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning, OSError) as exc:
        reason = "it is not an image Pillow can read" if isinstance(exc, UnidentifiedImageError) else str(exc)
        raise BadInput(f"'data' was refused: {reason}; send {expected_input(shape, dtype)}") from None
    pixels = np.asarray(converted, dtype=np.float64).reshape(height, width, channels)
    if np.issubdtype(np.dtype(dtype), np.floating):
        pixels = pixels / 255.0
    return pixels.astype(np.dtype(dtype))[np.newaxis]


def top_classes(probabilities: np.ndarray, labels: list[str] | None, k: int) -> list[dict[str, Any]]:
    """One answer per example: the best label and its probability, the ``k`` best classes, every probability."""
    names = labels if labels and len(labels) == probabilities.shape[-1] else None
    answers = []
    for row in probabilities.reshape(probabilities.shape[0], -1):
        order = np.argsort(-row, kind="stable")[: max(1, k)]
        top = [
            {"class": int(i), "label": names[i] if names else str(int(i)), "probability": float(row[i])} for i in order
        ]
        answers.append(
            {
                "label": top[0]["label"],
                "probability": top[0]["probability"],
                "top": top,
                "probabilities": [float(p) for p in row],
            }
        )
    return answers


def _response_schema() -> Any:
    from marshmallow import fields

    top = {"class": fields.Int(required=True), "label": fields.Str(required=True), "probability": fields.Float()}
    prediction = {
        "label": fields.Str(required=True, metadata={"description": "the most probable class's label"}),
        "probability": fields.Float(required=True),
        "top": fields.List(fields.Nested(top), metadata={"description": "the top_k classes, best first"}),
        "probabilities": fields.List(fields.Float(), metadata={"description": "every class, in the model's order"}),
    }
    return {
        "status": fields.Str(required=True),
        "model": fields.Str(required=True, metadata={"description": "owner/name:version"}),
        "predictions": fields.List(fields.Nested(prediction), metadata={"description": "one per example"}),
    }


class StoreModel:
    """One version of the model store, as DEEPaaS's v2 model interface (``deepaas.model.v2.base.BaseModel``).

    ``model_file`` is the version's ``model.keras``; ``metadata`` its ``metadata.json`` as a dict.
    """

    def __init__(self, model_file: str, metadata: dict[str, Any]) -> None:
        self.model_file = model_file
        self.metadata = metadata
        self.ref = f"{metadata['owner']}/{metadata['name']}:{metadata['version']}"
        self.input_shape: tuple[int | None, ...] = tuple(metadata["input_shape"])
        self.input_dtype: str = metadata["input_dtype"]
        self.labels: list[str] | None = metadata.get("labels")
        self.schema = _response_schema()

    # ---- the DEEPaaS interface ----

    def get_metadata(self) -> dict[str, Any]:
        meta = self.metadata
        return {
            "id": self.ref,
            "name": meta["name"],
            "description": meta.get("description") or f"{self.ref}, published with Occam",
            "author": meta["owner"],
            "version": str(meta["version"]),
            "license": "",
            "url": "",
            "input_shape": list(self.input_shape),
            "input_dtype": self.input_dtype,
            "labels": self.labels,
            "metrics": meta.get("metrics", {}),
            "expected_input": expected_input(self.input_shape, self.input_dtype),
        }

    def get_predict_args(self) -> dict[str, Any]:
        from webargs import fields, validate

        return {
            "data": fields.Raw(
                required=False,
                metadata={
                    "description": "An image file (PNG, JPEG...), resized to the model's input",
                    "location": "form",
                    "type": "file",
                },
            ),
            "instances": fields.Raw(
                required=False,
                metadata={
                    "description": (
                        f"A JSON array: one example of shape {list(self.input_shape)} or a batch of them "
                        "(instead of 'data'; as a JSON body {\"instances\": [...]} or a form field)"
                    ),
                },
            ),
            "top_k": fields.Int(
                required=False,
                load_default=DEFAULT_TOP_K,
                validate=validate.Range(min=1, max=1000),
                metadata={"description": "how many classes to list per example, best first"},
            ),
        }

    def warm(self) -> None:
        _model(self.model_file)

    def predict(self, **kwargs: Any) -> dict[str, Any]:
        batch = self.input_batch(kwargs.get("data"), kwargs.get("instances"))
        probabilities = np.asarray(_model(self.model_file).predict(batch, verbose=0))
        if probabilities.ndim == 1:
            probabilities = probabilities[:, np.newaxis]
        top_k = int(kwargs.get("top_k") or DEFAULT_TOP_K)
        return {"status": "OK", "model": self.ref, "predictions": top_classes(probabilities, self.labels, top_k)}

    def train(self, **kwargs: Any) -> None:
        raise NotImplementedError("a published model is immutable: re-train it in a notebook and publish again")

    def get_train_args(self) -> dict[str, Any]:
        return {}

    # ---- input ----

    def input_batch(self, data: Any, instances: Any) -> np.ndarray:
        """The batch the request carries: DEEPaaS hands an upload over as a temporary file, removed here first."""
        content = _take_upload(data)
        if content is not None and instances is not None:
            raise BadInput(f"send either 'data' or 'instances', not both: {self.expected}")
        if content is not None:
            return image_to_array(content, self.input_shape, self.input_dtype)
        if instances is not None:
            return instances_to_array(instances, self.input_shape, self.input_dtype)
        if data is not None:
            raise BadInput(f"'data' must be a file upload (multipart/form-data); send {self.expected}")
        raise BadInput(f"nothing to predict: send {self.expected}")

    @property
    def expected(self) -> str:
        return expected_input(self.input_shape, self.input_dtype)


def _take_upload(data: Any) -> bytes | None:
    """The bytes of an uploaded file (DEEPaaS's ``UploadedFile``), its temporary file removed; None otherwise."""
    path = getattr(data, "filename", None)
    if not path:
        return None
    try:
        with open(path, "rb") as upload:
            return upload.read()
    finally:
        os.unlink(path)


def _model(path: str) -> Any:
    model = _LOADED.get(path)
    if model is None:
        import tensorflow as tf

        model = tf.keras.models.load_model(path, compile=False)
        _LOADED[path] = model
    return model
