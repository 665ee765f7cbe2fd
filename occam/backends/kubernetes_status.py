"""``occam status`` and ``occam stop`` on Kubernetes: the Occam clusters and batch jobs of the student's namespace."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from occam.contract import NAMESPACE_ENV
from occam.errors import ConfigError
from occam.kubernetes.api import NamespaceApi
from occam.kubernetes.pods import clusters_in


def status_text(environ: Mapping[str, str]) -> str:
    """A table of the namespace's clusters: name, user, executors, pod phases, a batch job's driver."""
    api = NamespaceApi(environ[NAMESPACE_ENV])
    try:
        clusters = clusters_in(api.occam_pods())
    finally:
        api.close()
    if not clusters:
        return f"no Occam cluster in namespace {api.namespace}"
    lines = [f"{'cluster':<32} {'user':<16} {'executors':>9}  phases"]
    for name, info in sorted(clusters.items()):
        phases = ", ".join(f"{k} {v}" for k, v in sorted(info["phases"].items()))
        if info["driver"]:
            phases += f"{'; ' if phases else ''}batch driver {info['driver']}"
        lines.append(f"{name:<32} {info['user']:<16} {info['executors']:>9}  {phases}")
    return "\n".join(lines)


def stop_clusters(names: Sequence[str], every: bool, environ: Mapping[str, str]) -> list[str]:
    """Delete the named clusters (or every one); one line each saying what went."""
    api = NamespaceApi(environ[NAMESPACE_ENV])
    try:
        running = clusters_in(api.occam_pods())
        chosen = sorted(running) if every else list(names)
        if not chosen:
            raise ConfigError("name the clusters to stop (see occam status), or pass --all")
        unknown = [n for n in chosen if n not in running]
        if unknown:
            raise ConfigError(f"no cluster {', '.join(unknown)} in namespace {api.namespace}; occam status lists them")
        stopped = []
        for name in chosen:
            api.delete_cluster(name)
            stopped.append(f"stopped {name}: deleted its {running[name]['executors']} executor pod(s) and its Secret")
        return stopped
    finally:
        api.close()
