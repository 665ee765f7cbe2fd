"""``occam submit`` and ``occam conf``: a batch job's request, handed to the backend that runs it."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping

from occam import config
from occam.backends import Backend, select_backend
from occam.batch.job import Job, Submission
from occam.spec import ClusterSpec


def job_spec(
    executors: int,
    *,
    gpu: bool = False,
    cores: int | None = None,
    memory: str | None = None,
    timeout: float | None = None,
    name: str | None = None,
    verbose: bool | None = None,
) -> ClusterSpec:
    """The job's executors, checked like ``start_cluster``'s (same defaults and ``OCCAM_*`` variables);
    ``verbose`` lets Spark's and TensorFlow's notices through (default: ``OCCAM_LOG_LEVEL``, errors only)."""
    spec = Backend.request(executors, gpu=gpu, cores=cores, memory=memory, timeout=timeout, name=name)
    return dataclasses.replace(spec, log_level=config.log_level(verbose))


def batch_backend(name: str | None, environ: Mapping[str, str] | None = None) -> type[Backend]:
    """The backend that runs the job: ``name``, or ``auto`` (the default, or ``OCCAM_BACKEND``) as ``start_cluster``
    picks. A backend that cannot run batch jobs says so when asked to."""
    return select_backend(config.get("backend", name), environ)


def submit(
    job: Job,
    spec: ClusterSpec,
    *,
    backend: str | None = None,
    detach: bool = False,
    keep: bool = False,
    service_account: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Run ``job`` as a batch job on ``spec.n`` executors; return its exit status (0 once submitted, detached)."""
    env = os.environ if environ is None else environ
    submission = Submission(job, spec, detach=detach, keep=keep, service_account=service_account, environ=env)
    return batch_backend(backend, env).submit_job(submission)


def conf_text(
    spec: ClusterSpec,
    *,
    backend: str | None = None,
    service_account: str | None = None,
    template_dir: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> str:
    """``spark-defaults.conf`` text for plain spark-submit: the properties ``occam submit`` would pass.

    Never holds a secret. On Kubernetes the pod templates are written to ``template_dir`` (default
    ``./occam-templates``), and the comments say which Secret and ConfigMap the job needs.
    """
    env = os.environ if environ is None else environ
    return batch_backend(backend, env).job_conf_text(
        spec, service_account=service_account, template_dir=template_dir or "occam-templates", environ=env
    )
