"""The model store: publish a trained model as a versioned, immutable entry, list, load and remove models,
share them with the course, re-train them (``occam.models.transfer``) and serve them.

import occam
model = occam.models.publish(result, "digits-cnn", labels=[str(d) for d in range(10)])
occam.models.list()                               # mine and the ones shared with me
base = occam.models.load("alice/digits-cnn:2")    # also inside a model_fn, on every rank

Layout and atomicity: :mod:`occam.models.store`; what each version records: :mod:`occam.models.metadata`;
the course catalog of shared models on Kubernetes: :mod:`occam.models.catalog` (its files),
:mod:`occam.models.catalog_service` (its only writer) and :mod:`occam.models.catalog_client` (the notebook's
side); docs/models.md for students. Importing this package loads no TensorFlow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from occam.models.metadata import ModelList, ModelMetadata
from occam.models.publish import info, list, load, publish, remove
from occam.models.store import ModelEntry, resolve

if TYPE_CHECKING:
    from occam.models.service import BaseModelService


def serve(ref: str, **kwargs: Any) -> BaseModelService:
    """Start a web service for the model ``ref`` (see :func:`occam.models.serving.serve`)."""
    from occam.models.serving import serve as start_service

    return start_service(ref, **kwargs)


def stop_service(ref: str, **kwargs: Any) -> None:
    """Stop the model service of ``ref`` kept on Kubernetes (see :func:`occam.models.serving.stop_service`)."""
    from occam.models.serving import stop_service as stop

    stop(ref, **kwargs)


__all__ = [
    "ModelEntry",
    "ModelList",
    "ModelMetadata",
    "info",
    "list",
    "load",
    "publish",
    "remove",
    "resolve",
    "serve",
    "stop_service",
]
