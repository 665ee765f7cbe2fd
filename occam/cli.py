"""The ``occam`` command line."""

from __future__ import annotations

import argparse
import sys

from occam.errors import OccamError


def _demo(args: argparse.Namespace) -> int:
    from occam.demo import run_demo

    result = run_demo(
        executors=args.executors,
        epochs=args.epochs,
        batch_size=args.batch_size,
        backend=args.backend,
        progress=not args.no_progress,
    )
    if result.held_out_accuracy < args.min_accuracy:
        print(f"held-out accuracy {result.held_out_accuracy:.4f} is below --min-accuracy {args.min_accuracy}")
        return 1
    return 0


def _version(args: argparse.Namespace) -> int:
    from occam import __version__

    print(__version__)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="occam", description="Spark + Horovod virtual clusters for deep learning")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="train a CNN on scikit-learn's digits on an embedded cluster")
    demo.add_argument("--executors", "-n", type=int, default=2, help="executors, one Horovod rank each (2)")
    demo.add_argument("--epochs", type=int, default=8, help="training epochs (8)")
    demo.add_argument("--batch-size", type=int, default=32, help="batch size per rank (32)")
    demo.add_argument("--backend", default=None, help="embedded, or auto (default: OCCAM_BACKEND or auto)")
    demo.add_argument("--min-accuracy", type=float, default=0.0, help="exit 1 if held-out accuracy is lower")
    demo.add_argument("--no-progress", action="store_true", help="no progress bars (logs, CI)")
    demo.set_defaults(run=_demo)

    version = commands.add_parser("version", help="print Occam's version")
    version.set_defaults(run=_version)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except OccamError as exc:
        print(f"occam: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
