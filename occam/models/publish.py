"""``occam.models.publish / load / list / remove / info``: the store (:mod:`occam.models.store`) with Keras models.

With a course catalog (``OCCAM_CATALOG_URL`` and ``OCCAM_CATALOG_DIR``, set by the spawner on Kubernetes), a
shared version is also copied into the catalog by its service (:mod:`occam.models.catalog_client`), and
``list``/``load``/``info`` read the catalog's read-only mount after the student's own store. TensorFlow is
imported only inside ``publish`` and ``load``.
"""

from __future__ import annotations

import builtins
import datetime
import importlib.metadata
import os
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from occam.errors import ModelError, ModelNotFoundError
from occam.models import catalog_client, store
from occam.models.metadata import ModelList, ModelMetadata, share_value
from occam.training.result import FitResult

Root = str | os.PathLike[str] | None


def _occam_version() -> str:
    try:
        return importlib.metadata.version("occam")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _input_signature(model: Any) -> tuple[builtins.list[int | None], str]:
    """The first input's shape (without the batch dimension) and dtype name."""
    inputs = getattr(model, "inputs", None)
    if not inputs:
        raise ModelError(
            "the model has no known input shape: build it first (an Input layer, or model.build(...) / one "
            "call on data) before publishing"
        )
    first = inputs[0]
    shape = [None if d is None else int(d) for d in first.shape[1:]]
    return shape, first.dtype.name


def _model_and_training(result_or_model: Any) -> tuple[Any, dict[str, Any]]:
    if isinstance(result_or_model, FitResult):
        result = result_or_model
        return result.model, {
            "metrics": {k: float(v[-1]) for k, v in result.history.items() if v},
            "dataset_key": result.dataset_key,
            "epochs": max(result.epochs) if result.epochs else None,
            "ranks": result.ranks,
        }
    if hasattr(result_or_model, "save") and hasattr(result_or_model, "predict"):
        return result_or_model, {}
    raise ModelError(
        f"publish takes a fit's result (cluster.fit(...)) or a Keras model, not {type(result_or_model).__name__}"
    )


def _check_labels(labels: Sequence[str] | None, model: Any) -> builtins.list[str] | None:
    if labels is None:
        return None
    if isinstance(labels, str) or not all(isinstance(label, str) for label in labels):
        raise ModelError(f"labels={labels!r} must be a list of strings, one per output class, e.g. ['cat', 'dog']")
    outputs = getattr(model, "output_shape", None)
    classes = outputs[-1] if isinstance(outputs, tuple) and outputs else None
    if isinstance(classes, int) and classes != len(labels):
        raise ModelError(f"{len(labels)} labels for a model with {classes} outputs: give one label per output class")
    return builtins.list(labels)


def _check_same_kind(metadata: ModelMetadata, root: Root) -> None:
    """Versions of one name are the same kind of model: what serves or loads ``name`` can rely on its input."""
    latest = store.versions(store.models_root(root) / metadata.owner / metadata.name)
    if not latest:
        return
    previous = store.read_metadata(store.models_root(root) / metadata.owner / metadata.name / str(latest[-1]))
    if previous is None:
        return
    if (previous.input_shape, previous.input_dtype) != (metadata.input_shape, metadata.input_dtype):
        raise ModelError(
            f"the name {metadata.name!r} is taken by a model of another kind: its version {previous.version} takes "
            f"{previous.input_dtype} input of shape {previous.input_shape}, this one {metadata.input_dtype} of "
            f"{metadata.input_shape}. Publish it under another name, or remove({metadata.name!r}) first"
        )


def publish(
    result_or_model: Any,
    name: str,
    *,
    description: str = "",
    labels: Sequence[str] | None = None,
    share: str | Sequence[str] | None = None,
    root: Root = None,
) -> ModelMetadata:
    """Publish a trained model as the next version of ``name`` and return that version's metadata.

    ``result_or_model`` is what ``cluster.fit`` returned (its last epoch's metrics, epochs, ranks and dataset
    key are recorded) or a built Keras model. ``labels`` name the output classes in order (one per output).
    ``share``: ``None`` keeps it private, ``"course"`` lets everyone in the course load it, a list of user
    names lets them. Every publish makes a new, immutable version (``name:1``, ``name:2``...); all versions
    of a name take the same input. ``root`` overrides the models root (``OCCAM_MODELS_DIR``).
    """
    store.check_name(name)
    model, training = _model_and_training(result_or_model)
    shape, dtype = _input_signature(model)
    import tensorflow as tf

    owner = store.current_user()
    metadata = ModelMetadata(
        name=name,
        owner=owner,
        version=0,
        input_shape=shape,
        input_dtype=dtype,
        labels=_check_labels(labels, model),
        occam_version=_occam_version(),
        tensorflow_version=tf.__version__,
        created_at=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        created_by=f"{owner}@{socket.gethostname()}",
        description=str(description),
        share=share_value(share),
        **training,
    )
    _check_same_kind(metadata, root)

    def save(path: Path) -> None:
        model.save(path)

    entry = store.write_version(metadata, save, root=root)
    if entry.metadata.shared and catalog_client.catalog_url() is not None:
        try:
            catalog_client.upload(entry.path, owner, name, entry.metadata.version)
        except BaseException:
            # All or nothing: a version meant to be shared that the catalog did not take is not published.
            store.remove(f"{name}:{entry.metadata.version}", root=root)
            raise
    return entry.metadata


def _resolve(ref: str, root: Root) -> store.ModelEntry:
    """The version ``ref`` names: from the student's own store, else from the course catalog (read-only mount)."""
    try:
        return store.resolve(ref, root=root)
    except ModelNotFoundError:
        shared = catalog_client.catalog_dir()
        if shared is None:
            raise
        try:
            return store.resolve(ref, root=shared)
        except ModelNotFoundError as in_catalog:
            raise ModelNotFoundError(f"{in_catalog} (looked in your store and in the course catalog)") from None


def load(ref: str, compile: bool = True, *, root: Root = None, custom_objects: dict[str, Any] | None = None) -> Any:
    """The Keras model ``ref`` names (``name``, ``name:3``, ``owner/name``, ``owner/name:3``; no version: the
    latest you may read), compiled as it was published unless ``compile=False``.

    Works inside a ``model_fn`` on every rank: the ranks get ``OCCAM_MODELS_DIR`` and ``JUPYTERHUB_USER``.
    """
    entry = _resolve(ref, root)
    import tensorflow as tf

    return tf.keras.models.load_model(entry.model_path, compile=compile, custom_objects=custom_objects)


def info(ref: str, *, root: Root = None) -> ModelMetadata:
    """The metadata of the version ``ref`` names, without loading the model."""
    return _resolve(ref, root).metadata


def list(*, root: Root = None) -> ModelList:
    """Your models and the ones shared with you (in the course catalog too), every version, yours first; a table
    in a notebook."""
    rows = store.list_models(root=root)
    shared = catalog_client.catalog_dir()
    if shared is None:
        return rows
    seen = {row.ref for row in rows}
    return ModelList([*rows, *(row for row in store.list_models(root=shared) if row.ref not in seen)])


def remove(ref: str, *, root: Root = None) -> builtins.list[ModelMetadata]:
    """Remove one of your own models: ``"name:3"`` that version, ``"name"`` every version. Returns what went.

    Shared versions leave the course catalog first (its service checks again that they are yours)."""
    from_catalog: builtins.list[ModelMetadata] = []
    parsed = store.parse_ref(ref)
    user = store.current_user()
    if catalog_client.catalog_url() is not None and parsed.owner in (None, user):
        for metadata in _catalog_versions(parsed, user, root):
            catalog_client.remove(user, parsed.name, metadata.version)
            from_catalog.append(metadata)
    try:
        return store.remove(ref, root=root)
    except ModelNotFoundError:
        if not from_catalog:
            raise
        return from_catalog  # only in the catalog (its private copy was removed before): gone now


def _catalog_versions(parsed: store.Ref, user: str, root: Root) -> builtins.list[ModelMetadata]:
    """The user's shared versions ``parsed`` names, in their store or in the catalog."""
    found: dict[int, ModelMetadata] = {}
    for base in (store.models_root(root), catalog_client.catalog_dir()):
        if base is None:
            continue
        name_dir = base / user / parsed.name
        for version in store.versions(name_dir):
            if parsed.version in (None, version):
                metadata = store.read_metadata(name_dir / str(version))
                if metadata is not None and metadata.shared:
                    found.setdefault(version, metadata)
    return [found[v] for v in sorted(found)]
