"""The JupyterHub side of Occam.

``OccamSpawner`` (a KubeSpawner for the course cluster) will live here. For now the package holds what it
builds for each student: the per-student namespace and its objects (:mod:`spawner.namespace`, pure
builders), the course's resource limits (:mod:`spawner.limits`), and :func:`spawner.apply.prepare_namespace`,
which creates or updates those objects through the Kubernetes API.
"""
