"""A batch training script: the digits CNN, data-parallel, as a job.

Run it with ``occam submit -m occam.examples.train_digits --executors 2 -- --epochs 5``, or
``occam submit path/to/train_digits.py ...``. The code is what a notebook would run: ``start_cluster()``
attaches to the executors the job was submitted with. Prints one line per epoch and the held-out
accuracy; exits 1 if that is below ``--min-accuracy``.
"""

from __future__ import annotations

import argparse
import sys

from occam import Dataset, start_cluster
from occam.examples.digits import build_cnn, load_digits


def _print_epoch(epoch: int, logs: dict[str, float]) -> None:
    print(f"epoch {epoch}: " + " ".join(f"{k}={v:.4f}" for k, v in logs.items()), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--min-accuracy", type=float, default=0.0)
    args = parser.parse_args(argv)

    x_train, y_train, x_test, y_test = load_digits()
    with start_cluster(progress=False) as cluster:
        print(f"cluster {cluster.name}: {cluster.n} executors", flush=True)
        train = Dataset.from_numpy(x_train, y_train, spark=cluster.spark)
        test = Dataset.from_numpy(x_test, y_test, spark=cluster.spark)
        result = cluster.fit(
            build_cnn,
            train,
            validation=test,
            epochs=args.epochs,
            batch_size=args.batch_size,
            progress=False,
            on_epoch_end=_print_epoch,
        )
    _, accuracy = result.model.evaluate(x_test, y_test, verbose=0)
    print(f"held-out accuracy: {accuracy:.4f} on {result.ranks} ranks", flush=True)
    if accuracy < args.min_accuracy:
        print(f"held-out accuracy {accuracy:.4f} is below --min-accuracy {args.min_accuracy}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
