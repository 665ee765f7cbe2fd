"""``Cluster.fit`` spells out every option of ``occam.training.fit.fit``, with the same defaults, and passes
each on."""

from __future__ import annotations

import inspect

from occam.cluster import Cluster

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
