"""Transfer learning: re-train part of a published network on a new task.

The recipe (docs/models.md), inside a ``model_fn`` so that every rank builds the same model::

    def model_fn():
        base = occam.models.load("alice/digits-0to4", compile=False)   # the published network
        model = replace_head(freeze(base), n_classes=5)                # its features, frozen; a new head
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

``freeze`` stops layers from training (Keras then leaves their weights alone, and Horovod averages only the
gradients of what trains); ``replace_head`` keeps the network up to a layer and puts new, freshly initialised
layers on top. Compile after both: Keras fixes what trains when a model is compiled.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from occam.errors import ModelError


def _layer_index(model: Any, layer: int | str) -> int:
    """The index in ``model.layers`` of a layer given by index (negative counts from the end) or by name."""
    layers = model.layers
    if isinstance(layer, str):
        names = [candidate.name for candidate in layers]
        if layer not in names:
            raise ModelError(f"the model has no layer {layer!r}; its layers: {', '.join(names)}")
        return names.index(layer)
    if isinstance(layer, bool) or not isinstance(layer, int) or not -len(layers) <= layer < len(layers):
        raise ModelError(
            f"layer {layer!r} is not an index of the model's {len(layers)} layers: give a name or an index "
            f"from {-len(layers)} to {len(layers) - 1} (model.summary() lists them)"
        )
    return layer % len(layers)


def freeze(model: Any, until: int | str | None = None) -> Any:
    """Freeze ``model``'s layers up to and including ``until`` (a layer name or index), all of them when
    ``until`` is None; the layers after it train. Returns the same model; compile it (again) afterwards.

    Batch normalisation layers that are frozen also keep their moving statistics (Keras runs a frozen
    ``BatchNormalization`` in inference mode), which is what fine-tuning wants.
    """
    last = len(model.layers) - 1 if until is None else _layer_index(model, until)
    for index, layer in enumerate(model.layers):
        layer.trainable = index > last
    return model


def replace_head(
    model: Any,
    n_classes: int,
    *,
    cut: int | str = -2,
    hidden: Sequence[int] = (),
    activation: str | None = "softmax",
    dropout: float = 0.0,
    name: str | None = None,
) -> Any:
    """A new model: ``model``'s layers up to and including ``cut`` (default: all but the last), then new dense
    layers of ``hidden`` units (ReLU), then a dense output of ``n_classes`` with ``activation``.

    The kept layers are shared with ``model`` (their weights and whether they train come along: freeze them
    first); the new layers start from Keras's usual random initialisation. The result is not compiled.
    """
    import tensorflow as tf

    if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 1:
        raise ModelError(f"n_classes={n_classes!r} must be the number of classes of the new task, at least 1")
    if not 0.0 <= dropout < 1.0:
        raise ModelError(f"dropout={dropout!r} must be at least 0 and below 1")
    if not getattr(model, "inputs", None):
        raise ModelError("the model has no known inputs: build it (an Input layer, or model.build(...)) first")
    features = model.layers[_layer_index(model, cut)].output
    x = features
    if len(x.shape) > 2:
        x = tf.keras.layers.Flatten(name="head_flatten")(x)
    for i, units in enumerate(hidden):
        x = tf.keras.layers.Dense(units, activation="relu", name=f"head_dense_{i}")(x)
    if dropout:
        x = tf.keras.layers.Dropout(dropout, name="head_dropout")(x)
    outputs = tf.keras.layers.Dense(n_classes, activation=activation, name="head_output")(x)
    return tf.keras.Model(model.inputs, outputs, name=name or f"{model.name}_new_head")


def parameter_counts(model: Any) -> tuple[int, int]:
    """``(trainable, frozen)`` numbers of parameters: what a transfer run and its from-scratch baseline compare."""
    import tensorflow as tf

    def count(weights: list[Any]) -> int:
        return int(sum(tf.keras.backend.count_params(w) for w in weights))

    return count(model.trainable_weights), count(model.non_trainable_weights)
