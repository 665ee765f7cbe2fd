"""The program :func:`occam.tracking.mlflow_ui.mlflow_ui` runs: MLflow's server app, in this one process.

``mlflow server`` would start gunicorn as a process of its own, where the SQLAlchemy 2.1 fix of
:func:`occam.tracking.mlflow_store.patch_sqlalchemy` does not reach; this serves the same Flask app
(``mlflow.server.app``, configured by the variables ``mlflow server`` sets) with Werkzeug's threaded server.
One process, bound to the given host (127.0.0.1), no artifact proxy: the UI reads the run's files directly.
"""

from __future__ import annotations

import argparse
import os


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m occam.tracking.mlflow_app")
    parser.add_argument(
        "--store", required=True, help="the tracking URI, e.g. sqlite:////home/me/.cache/occam/mlflow.db"
    )
    parser.add_argument("--artifact-root", default=None, help="where new experiments keep artifacts")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)

    from occam.tracking.mlflow_store import patch_sqlalchemy

    patch_sqlalchemy()
    from mlflow.server import ARTIFACT_ROOT_ENV_VAR, BACKEND_STORE_URI_ENV_VAR

    os.environ[BACKEND_STORE_URI_ENV_VAR] = args.store
    if args.artifact_root:
        os.environ[ARTIFACT_ROOT_ENV_VAR] = args.artifact_root
    from mlflow.server import app
    from werkzeug.serving import run_simple

    run_simple(args.host, args.port, app, threaded=True, use_reloader=False, use_debugger=False)


if __name__ == "__main__":
    main()
