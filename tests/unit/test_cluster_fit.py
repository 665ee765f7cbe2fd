"""``Cluster.fit`` spells out every option of ``occam.training.fit.fit``, with the same defaults, and passes
each on; ``fit`` checks ``model_fn``'s model before anything starts."""

from __future__ import annotations

import inspect

import pytest

from occam.cluster import Cluster
from occam.errors import ConfigError

from .factories import spec


def test_cluster_fit_lists_every_parameter_of_training_fit_with_the_same_default():
    from occam.training.fit import fit

    implementation = list(inspect.signature(fit).parameters.values())[1:]  # without the cluster
    public = list(inspect.signature(Cluster.fit).parameters.values())[1:]  # without self
    assert [(p.name, p.kind, p.default, p.annotation) for p in public] == [
        (p.name, p.kind, p.default, p.annotation) for p in implementation
    ]
    assert inspect.signature(Cluster.fit).return_annotation == inspect.signature(fit).return_annotation


def test_cluster_fit_documents_every_keyword_parameter():
    doc = inspect.getdoc(Cluster.fit) or ""
    for name in list(inspect.signature(Cluster.fit).parameters)[1:]:
        assert f"\n    {name}: " in doc, f"Cluster.fit's Args section does not describe {name}"


def test_cluster_fit_passes_every_argument_on(monkeypatch):
    import occam.training.fit

    received = {}
    monkeypatch.setattr(occam.training.fit, "fit", lambda *args, **kwargs: received.update(args=args, kwargs=kwargs))
    cluster = Cluster(spec(), backend=None)
    parameters = list(inspect.signature(Cluster.fit).parameters)[3:]
    values = {name: object() for name in parameters}
    cluster.fit("model_fn", "dataset", **values)
    assert received == {"args": (cluster, "model_fn", "dataset"), "kwargs": values}


def compiled():
    import tensorflow as tf

    model = tf.keras.Sequential([tf.keras.layers.Input((4,)), tf.keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    return model


def uncompiled():
    import tensorflow as tf

    return tf.keras.Sequential([tf.keras.layers.Input((4,)), tf.keras.layers.Dense(2)])


def no_model():
    return None


def needs_horovod():
    raise ValueError("Horovod has not been initialized; use hvd.init().")


def test_the_driver_builds_the_model_once_and_keeps_a_compiled_one():
    pytest.importorskip("tensorflow", reason="builds a real Keras model")
    from occam.training.fit import _driver_model

    model = _driver_model(compiled)
    assert model.optimizer is not None


@pytest.mark.parametrize(
    ("model_fn", "complaint"),
    [
        (uncompiled, "must return a compiled Keras model: call model.compile(optimizer=..., loss=..."),
        (no_model, "must return a Keras model (tf.keras.Model), not NoneType: build the model, compile it"),
        (needs_horovod, "model_fn() raised ValueError('Horovod has not been initialized"),
    ],
)
def test_a_model_fn_that_gives_no_compiled_model_is_explained_before_anything_starts(model_fn, complaint):
    pytest.importorskip("tensorflow", reason="the check compares with tf.keras.Model")
    from occam.training.fit import _driver_model

    with pytest.raises(ConfigError) as info:
        _driver_model(model_fn)
    assert complaint in str(info.value)


def test_class_weight_with_several_outputs_is_refused_before_anything_starts():
    from occam.data.dataset import Dataset
    from occam.training.fit import fit

    two_heads = Dataset(
        path="/nowhere",
        features="features",
        label=None,
        feature_shape=(4,),
        num_rows=8,
        columns={},
        key="k",
        outputs=(("label_0", "digit", "int64"), ("label_1", "parity", "int64")),
    )
    with pytest.raises(ConfigError, match="class_weight works for a single output only"):
        fit(None, compiled, two_heads, class_weight={0: 1.0})  # type: ignore[arg-type]
