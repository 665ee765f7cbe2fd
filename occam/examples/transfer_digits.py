"""Transfer learning on the cluster: a CNN trained on digits 0-4 is published, then only a new head is trained on
digits 5-9, with ``occam.models.load`` inside ``model_fn`` on every rank, against the same head on top of the
same network with random, frozen weights (the same trainable parameters, the same data and epochs).

    python -m occam.examples.transfer_digits [--head-epochs 3] [--per-class 20]

or, in a notebook, ``compare(cluster)``. Prints both held-out accuracies on digits 5-9; exits 1 if the
published features do not beat the random ones.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from occam.examples.digits import build_cnn, load_digits
from occam.models import publish
from occam.models.transfer import freeze, parameter_counts, replace_head

if TYPE_CHECKING:
    from occam.cluster import Cluster

#: The published base model's name.
BASE_NAME = "digits-0to4"
#: Where the new head goes: on the convolutions' flattened features, the digits CNN's third layer from the
#: end (the base's dense layers are left out: trained on digits 0-4 they answer "which of 0-4", of little use
#: for 5-9). An index, as Keras numbers layer names per process ("flatten_3").
CUT = -3


@dataclass(frozen=True)
class Comparison:
    """What :func:`compare` found: held-out accuracies on digits 5-9 and the parameters each run trained."""

    base_ref: str
    base_accuracy: float
    transfer_accuracy: float
    scratch_accuracy: float
    trainable: int
    frozen: int

    def __str__(self) -> str:
        return (
            f"base {self.base_ref}: {self.base_accuracy:.3f} on digits 0-4\n"
            f"new head on the published features: {self.transfer_accuracy:.3f} on digits 5-9\n"
            f"same head on random frozen features:  {self.scratch_accuracy:.3f} on digits 5-9\n"
            f"({self.trainable:,} trainable and {self.frozen:,} frozen parameters in both)"
        )


def split_digits(per_class: int | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Digits 0-4 (``old``, ``old_test``) and 5-9 relabelled 0-4 (``new``, ``new_test``); ``per_class`` keeps
    only that many training images of each new digit (the few labelled examples of a new task)."""
    x, y, x_test, y_test = load_digits()
    old, old_test = y < 5, y_test < 5
    x_new, y_new = x[~old], y[~old] - 5
    if per_class is not None:
        keep = np.concatenate([np.flatnonzero(y_new == digit)[:per_class] for digit in range(5)])
        x_new, y_new = x_new[np.sort(keep)], y_new[np.sort(keep)]
    return {
        "old": (x[old], y[old]),
        "old_test": (x_test[old_test], y_test[old_test]),
        "new": (x_new, y_new),
        "new_test": (x_test[~old_test], y_test[~old_test] - 5),
    }


def head_model(base_ref: str | None, learning_rate: float, seed: int = 0) -> Any:
    """The new task's model: the published base (``base_ref``; None: the same network, randomly initialised)
    frozen, with a new 5-class head on its flattened convolution features. A ``model_fn``: every rank loads the
    base from the store."""
    import tensorflow as tf

    import occam.models

    tf.keras.utils.set_random_seed(seed)  # the same new head's start in both runs (rank 0's, broadcast)
    base = build_cnn() if base_ref is None else occam.models.load(base_ref, compile=False)
    model = replace_head(freeze(base), n_classes=5, cut=CUT)
    model.compile(
        optimizer=tf.keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def _accuracy(model: Any, data: tuple[np.ndarray, np.ndarray]) -> float:
    return float(model.evaluate(*data, verbose=0, return_dict=True)["accuracy"])


def compare(
    cluster: Cluster,
    *,
    base_epochs: int = 5,
    head_epochs: int = 3,
    per_class: int | None = 20,
    learning_rate: float = 0.003,
    batch_size: int = 16,
    base_name: str = BASE_NAME,
) -> Comparison:
    """Train the digits CNN on 0-4 on ``cluster`` and publish it as ``base_name``; then train a new head on 5-9
    on top of it (loaded by every rank) and on top of random frozen weights, the same way; evaluate both."""
    from occam import Dataset

    data = split_digits(per_class)
    old = Dataset.from_numpy(*data["old"], spark=cluster.spark)
    new = Dataset.from_numpy(*data["new"], spark=cluster.spark)
    base = cluster.fit(build_cnn, old, epochs=base_epochs, batch_size=32, progress=False)
    published = publish(base, base_name, description="digits CNN trained on 0-4", labels=[str(d) for d in range(10)])

    def train_head(base_ref: str | None) -> Any:
        model_fn = partial(head_model, base_ref, learning_rate)
        return cluster.fit(model_fn, new, epochs=head_epochs, batch_size=batch_size, progress=False).model

    transfer = train_head(published.ref)
    scratch = train_head(None)
    trainable, frozen = parameter_counts(transfer)
    assert parameter_counts(scratch) == (trainable, frozen)
    return Comparison(
        base_ref=published.ref,
        base_accuracy=_accuracy(base.model, data["old_test"]),
        transfer_accuracy=_accuracy(transfer, data["new_test"]),
        scratch_accuracy=_accuracy(scratch, data["new_test"]),
        trainable=trainable,
        frozen=frozen,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-epochs", type=int, default=5)
    parser.add_argument("--head-epochs", type=int, default=3)
    parser.add_argument("--per-class", type=int, default=20, help="training images per new digit")
    args = parser.parse_args(argv)

    from occam import start_cluster

    with start_cluster(progress=False) as cluster:
        found = compare(cluster, base_epochs=args.base_epochs, head_epochs=args.head_epochs, per_class=args.per_class)
    print(found, flush=True)
    return 0 if found.transfer_accuracy > found.scratch_accuracy else 1


if __name__ == "__main__":
    sys.exit(main())
