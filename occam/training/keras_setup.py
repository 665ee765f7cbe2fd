"""Turning the user's compiled Keras model into a Horovod data-parallel one, inside a rank."""

from __future__ import annotations

import re
from typing import Any

from occam.errors import TrainingError

CHECKPOINT_PREFIX = "epoch"


def built_input_shape(model: Any) -> Any:
    """The input shape(s) a trained model was built for, or None where Keras does not say."""
    try:
        return model.input_shape
    except (AttributeError, ValueError, RuntimeError):
        # Subclassed models have no ``input_shape``; Keras records what ``build`` was given.
        return getattr(model, "_build_input_shape", None)


def take_weights(model: Any, weights: list[Any], input_shape: Any) -> None:
    """Give ``model`` (the driver's, as ``model_fn`` built it) the trained ``weights``, building it first when
    ``model_fn`` left it unbuilt (no ``Input`` layer): then its variables exist only after a build."""
    if not model.built and input_shape is not None:
        model.build(input_shape)
    if not model.built:
        raise TrainingError(
            "training finished, but the model model_fn returns has no weights until it is built, and its input "
            "shape is not known here: give it an Input layer (tf.keras.Input(shape=...)) or call "
            "model.build(input_shape) in model_fn"
        )
    model.set_weights(weights)


def compiled_model_problem(model: Any) -> str | None:
    """Why ``model`` (what ``model_fn`` returned) cannot be trained, or ``None`` if it is a compiled Keras model."""
    import tensorflow as tf

    if not isinstance(model, tf.keras.Model):
        return (
            f"model_fn must return a Keras model (tf.keras.Model), not {type(model).__name__}: "
            "build the model, compile it and return it"
        )
    if not getattr(model, "optimizer", None) or not getattr(model, "_is_compiled", False):
        return (
            "model_fn must return a compiled Keras model: call model.compile(optimizer=..., loss=..., "
            "metrics=[...]) before returning it"
        )
    return None


def distribute(model: Any, hvd: Any, *, scale_lr: bool) -> Any:
    """Recompile ``model`` with its optimizer wrapped in ``hvd.DistributedOptimizer``.

    With ``scale_lr`` the learning rate is multiplied by the number of ranks: each step averages
    gradients over ``size`` times as many samples, the usual linear-scaling rule.
    """
    import tensorflow as tf

    problem = compiled_model_problem(model)
    if problem:
        raise TrainingError(problem)
    compile_config = model.get_compile_config()
    optimizer_config = model.optimizer.get_config()
    if scale_lr:
        lr = optimizer_config.get("learning_rate")
        if isinstance(lr, int | float):
            optimizer_config["learning_rate"] = lr * hvd.size()
    optimizer = hvd.DistributedOptimizer(model.optimizer.__class__.from_config(optimizer_config))

    def restore(value: Any) -> Any:
        if isinstance(value, dict) and "class_name" in value:
            return tf.keras.saving.deserialize_keras_object(value)
        if isinstance(value, dict):  # a multi-output model's losses or metrics, by output name
            return {name: restore(v) for name, v in value.items()}
        if isinstance(value, list):
            return [restore(v) for v in value]
        return value

    model.compile(
        optimizer=optimizer,
        loss=restore(compile_config.get("loss")),
        metrics=restore(compile_config.get("metrics")),
        loss_weights=compile_config.get("loss_weights"),
        weighted_metrics=restore(compile_config.get("weighted_metrics")),
    )
    return model


def checkpoint_manager(model: Any, directory: str) -> Any:
    import tensorflow as tf

    checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
    return tf.train.CheckpointManager(checkpoint, directory, max_to_keep=3, checkpoint_name=CHECKPOINT_PREFIX)


def epochs_done(checkpoint_path: str | None) -> int:
    """The number of finished epochs a checkpoint holds (its name ends in ``epoch-N``)."""
    if not checkpoint_path:
        return 0
    match = re.search(rf"{CHECKPOINT_PREFIX}-(\d+)$", checkpoint_path)
    return int(match.group(1)) if match else 0
