"""The kwok configuration of the test control plane: fake nodes, and what kwok does to pods bound to them.

kwok 0.8 has no built-in behaviour: without Stage objects it refuses to start ("no stages found"). These
three stages are the least that makes its nodes look like kubelets to the rest of the control plane:

* ``occam-node-ready``: a managed node without ``Ready=True`` gets the usual kubelet conditions, an
  InternalIP and ``phase: Running``; its capacity stays what the test gave it. After that the node's
  Lease (``kwok --node-lease-duration-seconds``) is its heartbeat, which the node lifecycle controller
  accepts, so the node stays Ready.
* ``occam-pod-running``: a pod bound to a managed node, not being deleted and not yet given an IP, is
  reported Running and Ready with every container running. Nothing runs: containers are pure API state.
* ``occam-pod-delete``: a pod with a deletion timestamp is deleted at once, as a kubelet does once its
  containers have stopped; otherwise pods on fake nodes would stay Terminating forever.

Each template is a Go template rendered by kwok, whose output is a strategic-merge patch of ``status``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: The annotation that marks a node as kwok's (``kwok --manage-nodes-with-annotation-selector``).
MANAGED_ANNOTATION = ("kwok.x-k8s.io/node", "fake")

_NODE_READY = """\
{{ $now := Now }}
conditions:
{{ range NodeConditions }}
- type: {{ .type | Quote }}
  status: {{ .status | Quote }}
  reason: {{ .reason | Quote }}
  message: {{ .message | Quote }}
  lastHeartbeatTime: {{ $now | Quote }}
  lastTransitionTime: {{ $now | Quote }}
{{ end }}
addresses:
- type: InternalIP
  address: {{ NodeIP | Quote }}
- type: Hostname
  address: {{ .metadata.name | Quote }}
phase: Running
"""

_POD_RUNNING = """\
{{ $now := Now }}
phase: Running
startTime: {{ $now | Quote }}
hostIP: {{ NodeIP | Quote }}
podIP: {{ PodIP | Quote }}
conditions:
{{ range list "Initialized" "Ready" "ContainersReady" }}
- type: {{ . | Quote }}
  status: "True"
  lastTransitionTime: {{ $now | Quote }}
{{ end }}
containerStatuses:
{{ range .spec.containers }}
- name: {{ .name | Quote }}
  image: {{ .image | Quote }}
  ready: true
  started: true
  restartCount: 0
  state:
    running:
      startedAt: {{ $now | Quote }}
{{ end }}
"""


def _stage(name: str, kind: str, expressions: list[dict], nxt: dict) -> dict:
    return {
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "Stage",
        "metadata": {"name": name},
        "spec": {
            "resourceRef": {"apiGroup": "v1", "kind": kind},
            "selector": {"matchExpressions": expressions},
            "next": nxt,
        },
    }


STAGES = [
    _stage(
        "occam-node-ready",
        "Node",
        [
            {
                "key": '.status.conditions.[] | select(.type == "Ready") | .status',
                "operator": "NotIn",
                "values": ["True"],
            }
        ],
        {"statusTemplate": _NODE_READY},
    ),
    _stage(
        "occam-pod-running",
        "Pod",
        [
            {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
            {"key": ".status.podIP", "operator": "DoesNotExist"},
        ],
        {"statusTemplate": _POD_RUNNING},
    ),
    _stage(
        "occam-pod-delete",
        "Pod",
        [{"key": ".metadata.deletionTimestamp", "operator": "Exists"}],
        {"delete": True},
    ),
]


def write_config(path: Path) -> Path:
    """Write the stages as a kwok ``--config`` file (YAML documents; JSON is YAML)."""
    path.write_text("\n---\n".join(json.dumps(stage, indent=1) for stage in STAGES) + "\n")
    return path


def fake_node(name: str, *, cpu: str, memory: str, gpus: int = 0, labels: dict[str, str] | None = None) -> dict:
    """A v1 Node for kwok to manage, with this capacity (and ``nvidia.com/gpu`` when ``gpus``)."""
    # ephemeral-storage: student namespaces' LimitRange gives every container some, which the scheduler
    # then counts against the node's.
    capacity = {"cpu": cpu, "memory": memory, "ephemeral-storage": "100Gi", "pods": "110"}
    if gpus:
        capacity["nvidia.com/gpu"] = str(gpus)
    node: dict = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {MANAGED_ANNOTATION[0]: MANAGED_ANNOTATION[1], "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
                **(labels or {}),
            },
        },
        "spec": {},
        "status": {"capacity": capacity, "allocatable": dict(capacity)},
    }
    if gpus:
        node["spec"]["taints"] = [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]
    return node


#: The nodes of the test cluster: two CPU-only nodes and two tainted GPU nodes of 2 GPUs each.
DEFAULT_NODES = [
    fake_node("cpu-0", cpu="4", memory="16Gi"),
    fake_node("cpu-1", cpu="4", memory="16Gi"),
    fake_node("gpu-0", cpu="8", memory="32Gi", gpus=2, labels={"occam.io/gpu": "true"}),
    fake_node("gpu-1", cpu="8", memory="32Gi", gpus=2, labels={"occam.io/gpu": "true"}),
]


def schedulable_nodes(core: Any) -> set[str]:
    """Names of the Ready nodes without a ``node.kubernetes.io/*`` taint (not-ready, unreachable, ...)."""
    ready = set()
    for node in core.list_node().items:
        conditions = {c.type: c.status for c in node.status.conditions or []}
        taints = {t.key for t in node.spec.taints or []}
        if conditions.get("Ready") == "True" and not any(t.startswith("node.kubernetes.io/") for t in taints):
            ready.add(node.metadata.name)
    return ready
