#!/bin/sh
# Entrypoint of Occam's notebook/executor image, run by tini (PID 1). "executor" starts a Spark executor
# from the variables Spark sets on executor pods, "driver ..." a cluster-mode spark-submit driver, and any
# other command runs as given (jupyterhub-singleuser for notebooks). The logic is occam/executor_entrypoint.py,
# unit-tested; it runs as a plain script (-I: stdlib only, no package import) to keep start-up short, and
# execs the command, which keeps the environment.
exec /opt/occam/venv/bin/python -I /opt/occam/executor_entrypoint.py "$@"
