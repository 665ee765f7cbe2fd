"""The JupyterHub side of Occam: ``OccamSpawner`` (:mod:`spawner.spawner`, entry point ``occam``), a KubeSpawner.

Pure builders, unit-tested without a cluster: the per-student namespace and its objects
(:mod:`spawner.namespace`), the course's limits (:mod:`spawner.limits`), the notebook pod's additions
(:mod:`spawner.notebook_pod`), the hub's ClusterRole (:mod:`spawner.hub_rbac`), the node-fit decision
(:mod:`spawner.placement`) and CPU/GPU profiles (:mod:`spawner.profiles`). Orchestration:
:func:`spawner.apply.prepare_namespace` and the spawner itself. docs/spawner.md is generated in part by
:mod:`spawner.reference`.
"""
