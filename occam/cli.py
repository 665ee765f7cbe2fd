"""The ``occam`` command line."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from occam.errors import OccamError

if TYPE_CHECKING:
    from occam.backends import Backend


def _demo(args: argparse.Namespace) -> int:
    from occam.demo import run_demo

    result = run_demo(
        executors=args.executors,
        epochs=args.epochs,
        batch_size=args.batch_size,
        backend=args.backend,
        progress=not args.no_progress,
        verbose=args.verbose or None,
    )
    if result.held_out_accuracy < args.min_accuracy:
        print(f"held-out accuracy {result.held_out_accuracy:.4f} is below --min-accuracy {args.min_accuracy}")
        return 1
    return 0


def _manager() -> type[Backend]:
    """The backend whose cluster manager holds this user's clusters (Kubernetes in a spawned notebook pod)."""
    import os

    from occam import config
    from occam.backends import select_backend

    return select_backend(config.get("backend"), os.environ)


def _status(args: argparse.Namespace) -> int:
    import os

    print(_manager().status_text(os.environ))
    return 0


def _stop(args: argparse.Namespace) -> int:
    import os

    for line in _manager().stop_clusters(args.names, args.all, os.environ):
        print(line)
    return 0


def _submit(args: argparse.Namespace) -> int:
    from occam.batch.job import Job
    from occam.submit import job_spec, submit

    job = Job(script=args.script, module=args.module, args=tuple(args.script_args))
    spec = job_spec(
        args.executors,
        gpu=args.gpu,
        cores=args.cores,
        memory=args.memory,
        timeout=args.timeout,
        name=args.name,
        verbose=args.verbose or None,
    )
    return submit(
        job, spec, backend=args.backend, detach=args.detach, keep=args.keep, service_account=args.service_account
    )


def _conf(args: argparse.Namespace) -> int:
    from occam.submit import conf_text, job_spec

    spec = job_spec(args.executors, gpu=args.gpu, cores=args.cores, memory=args.memory, name=args.name)
    print(
        conf_text(spec, backend=args.backend, service_account=args.service_account, template_dir=args.template_dir),
        end="",
    )
    return 0


def _add_job_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--executors", "-n", type=int, default=2, help="executors, one Horovod rank each (2)")
    parser.add_argument("--gpu", action="store_true", help="one GPU per executor")
    parser.add_argument("--cores", type=int, default=None, help="cores per executor (OCCAM_CORES or 1)")
    parser.add_argument("--memory", default=None, help="memory per executor, e.g. 2g (OCCAM_MEMORY or 1g)")
    parser.add_argument("--backend", default=None, help="embedded, kubernetes, or auto (OCCAM_BACKEND or auto)")
    parser.add_argument("--name", default=None, help="the job's name (default: occam- and a random suffix)")
    parser.add_argument(
        "--service-account", default=None, help="Kubernetes: the driver pod's account (default: your notebook's)"
    )


def _course(args: argparse.Namespace) -> int:
    from occam.course import commands

    token = commands.hub_token(getattr(args, "token_file", None))
    if args.course_command == "status":
        print(commands.status(args.kubeconfig, args.hub_url, token), end="")
    elif args.course_command == "metrics":
        print(commands.metrics(args.kubeconfig), end="")
    else:
        code = None
        if args.code_file:
            with open(args.code_file) as f:
                code = f.read()
        ok, text = commands.check(
            args.hub_url, token, code=code, spawn_timeout=args.spawn_timeout, code_timeout=args.code_timeout
        )
        print(text, end="")
        return 0 if ok else 1
    return 0


def _add_course_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    course = commands.add_parser("course", help="for a course's admin: who holds what, metrics, a smoke test")
    sub = course.add_subparsers(dest="course_command", required=True)
    token_help = "a file holding the hub's admin API token (default: $OCCAM_HUB_TOKEN)"
    status = sub.add_parser("status", help="each student's notebook, clusters, executors, GPUs and idle time")
    status.add_argument(
        "--kubeconfig", default=None, help="the admin's kubeconfig (default: $KUBECONFIG, ~/.kube/config)"
    )
    status.add_argument(
        "--hub-url", default=None, help="the hub's address, for idle times (e.g. https://occam.example.org)"
    )
    status.add_argument("--token-file", default=None, help=token_help)
    metrics = sub.add_parser("metrics", help="executors and GPUs per namespace, in Prometheus' text format")
    metrics.add_argument(
        "--kubeconfig", default=None, help="the admin's kubeconfig (default: $KUBECONFIG, ~/.kube/config)"
    )
    check = sub.add_parser("check", help="spawn a test user, train a few steps in its notebook, clean up")
    check.add_argument("--hub-url", required=True, help="the hub's address, as students open it")
    check.add_argument("--token-file", default=None, help=token_help)
    check.add_argument(
        "--code-file", default=None, help="run this Python file in the notebook instead of the default check"
    )
    check.add_argument("--spawn-timeout", type=float, default=600, help="seconds to wait for the server (600)")
    check.add_argument("--code-timeout", type=float, default=900, help="seconds the code may take (900)")
    course.set_defaults(run=_course)


def _serve(args: argparse.Namespace) -> int:
    """Serve a published model in the foreground until Ctrl-C (or SIGTERM); the service stops with it."""
    import signal
    import threading

    from occam.models.serving import serve

    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with serve(args.name, host=args.host, port=args.port) as service:
        print(f"serving {service.ref} at {service.url}")
        print(f"  API page:  {service.link}")
        print(f"  predict:   curl -H 'Authorization: token <token>' -F data=@image.png {service.predict_url}")
        # The token goes to the terminal of the user who started the service, never to a log or argv.
        print(f"  token:     {service.token}")
        print("Ctrl-C stops it.", flush=True)
        try:
            while not done.wait(1.0):
                if not service.running:
                    print(f"occam: the service stopped on its own; its log:\n{service.log()[-3000:]}", file=sys.stderr)
                    return 1
        except KeyboardInterrupt:
            pass
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
    demo.add_argument("--verbose", action="store_true", help="show Spark's warnings and TensorFlow's notices too")
    demo.set_defaults(run=_demo)

    status = commands.add_parser("status", help="list this namespace's Occam clusters (Kubernetes)")
    status.set_defaults(run=_status)
    stop = commands.add_parser("stop", help="delete the executors and objects of Occam clusters (Kubernetes)")
    stop.add_argument("names", nargs="*", help="cluster names, as occam status shows them")
    stop.add_argument("--all", action="store_true", help="every Occam cluster in this namespace")
    stop.set_defaults(run=_stop)

    submit = commands.add_parser(
        "submit",
        help="run a training script as a batch job (spark-submit)",
        description="Run a script as a batch job; arguments after -- go to the script. Exits with its status.",
    )
    submit.add_argument("script", nargs="?", help="the Python script to run (or -m MODULE)")
    submit.add_argument("-m", dest="module", default=None, help="run a module, like python -m")
    _add_job_options(submit)
    submit.add_argument("--timeout", type=float, default=None, help="seconds to wait for start-up (OCCAM_TIMEOUT)")
    submit.add_argument("--detach", action="store_true", help="Kubernetes: return once the driver pod is created")
    submit.add_argument("--keep", action="store_true", help="Kubernetes: keep the driver pod (and its log) at the end")
    submit.add_argument("--verbose", action="store_true", help="show Spark's warnings and TensorFlow's notices too")
    submit.set_defaults(run=_submit, script_args=[])

    conf = commands.add_parser("conf", help="print spark-defaults.conf lines for plain spark-submit")
    _add_job_options(conf)
    conf.add_argument("--template-dir", default=None, help="Kubernetes: where to write the pod templates")
    conf.set_defaults(run=_conf)

    _add_course_commands(commands)

    serve = commands.add_parser(
        "serve",
        help="serve a published model as a web API (DEEPaaS, with its Swagger UI) until Ctrl-C",
        description="Serve a published model (name, name:3, owner/name:3) on this machine until Ctrl-C.",
    )
    serve.add_argument("name", help="the model: name, name:VERSION, or owner/name[:VERSION]")
    serve.add_argument("--port", type=int, default=None, help="port to listen on (default: any free port)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine)")
    serve.set_defaults(run=_serve)

    version = commands.add_parser("version", help="print Occam's version")
    version.set_defaults(run=_version)
    return parser


def split_script_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """``occam submit ... -- ARGS``: what follows the first ``--`` belongs to the job's script."""
    if argv[:1] == ["submit"] and "--" in argv:
        split = argv.index("--")
        return argv[:split], argv[split + 1 :]
    return argv, []


def main(argv: list[str] | None = None) -> int:
    argv, script_args = split_script_args(sys.argv[1:] if argv is None else list(argv))
    args = build_parser().parse_args(argv)
    if script_args:
        args.script_args = script_args
    try:
        return int(args.run(args))
    except OccamError as exc:
        print(f"occam: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
