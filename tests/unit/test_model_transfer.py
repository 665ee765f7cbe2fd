"""The transfer-learning helpers (``occam.models.transfer``) on small real Keras models (no training)."""

from __future__ import annotations

import pytest

tf = pytest.importorskip("tensorflow")

from occam.errors import ModelError  # noqa: E402
from occam.examples.digits import build_cnn  # noqa: E402
from occam.models.transfer import freeze, parameter_counts, replace_head  # noqa: E402


def test_freeze_stops_the_layers_up_to_the_one_named():
    model = build_cnn()
    assert [layer.trainable for layer in freeze(model, until=2).layers] == [False] * 3 + [True] * 3
    assert not any(layer.trainable for layer in freeze(model).layers)
    name = model.layers[-2].name
    assert [layer.trainable for layer in freeze(model, until=name).layers] == [False] * 5 + [True]


def test_replace_head_keeps_the_frozen_base_and_adds_a_new_output():
    base = freeze(build_cnn())
    model = replace_head(base, 5, cut=-3, hidden=(16,), dropout=0.2)
    assert model.output_shape == (None, 5)
    assert model.layers[len(base.layers) - 2] is base.layers[-3]  # shared, not copied
    trainable, frozen = parameter_counts(model)
    assert trainable == (1024 * 16 + 16) + (16 * 5 + 5)
    assert frozen == sum(int(w.numpy().size) for layer in base.layers[:4] for w in layer.weights)
    # A cut on a feature map gets a Flatten before the new dense layers.
    assert replace_head(base, 3, cut=1).output_shape == (None, 3)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m: freeze(m, until="nope"), "has no layer 'nope'"),
        (lambda m: freeze(m, until=6), "not an index of the model's 6 layers"),
        (lambda m: replace_head(m, 0), "n_classes=0"),
        (lambda m: replace_head(m, 2, dropout=1.0), "dropout"),
    ],
)
def test_mistakes_name_the_fix(call, message):
    with pytest.raises(ModelError, match=message):
        call(build_cnn())
