"""What ``occam course status|metrics|check`` do: read the cluster (and the hub), then format.

The hub's token comes from ``OCCAM_HUB_TOKEN`` or a file (``--token-file``), never from the command line,
where other users of the machine could read it.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping

from occam.course.check import DEFAULT_CODE, HubClient, report, run_check
from occam.course.status import StudentRow, metrics_text, status_table, student_rows
from occam.errors import ConfigError
from occam.kubernetes.api import CourseApi

#: The environment variable holding the hub's admin API token.
TOKEN_ENV = "OCCAM_HUB_TOKEN"


def hub_token(token_file: str | None, environ: Mapping[str, str] | None = None) -> str:
    """The hub API token: the first line of ``token_file``, else ``OCCAM_HUB_TOKEN``; '' when neither."""
    if token_file:
        try:
            with open(token_file) as f:
                return f.readline().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read the hub token file {token_file}: {exc}") from None
    return (os.environ if environ is None else environ).get(TOKEN_ENV, "").strip()


def _parse_time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def course_rows(kubeconfig: str | None, hub_url: str | None, token: str) -> list[StudentRow]:
    """Every student namespace's row; with ``hub_url`` (and a token), each running server's idle time too."""
    api = CourseApi(kubeconfig)
    try:
        namespaces, pods = api.student_namespaces(), api.occam_pods()
    finally:
        api.close()
    activity = None
    if hub_url:
        users = HubClient(hub_url, token).users()
        activity = {u["name"]: t for u in users if (t := _parse_time(u.get("last_activity"))) is not None}
    return student_rows(namespaces, pods, last_activity=activity)


def status(kubeconfig: str | None, hub_url: str | None, token: str) -> str:
    return status_table(course_rows(kubeconfig, hub_url, token))


def metrics(kubeconfig: str | None) -> str:
    return metrics_text(course_rows(kubeconfig, None, ""))


def check(hub_url: str, token: str, *, code: str | None, spawn_timeout: float, code_timeout: float) -> tuple[bool, str]:
    """(whether every step worked, the report)."""
    client = HubClient(hub_url, token)
    steps = run_check(client, code=code or DEFAULT_CODE, spawn_timeout=spawn_timeout, code_timeout=code_timeout)
    return bool(steps) and all(s.ok for s in steps), report(steps)


__all__ = ["TOKEN_ENV", "check", "course_rows", "hub_token", "metrics", "status"]
