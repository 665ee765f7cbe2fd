"""Which network interface Horovod's ranks use to reach the driver's rendezvous server."""

from __future__ import annotations

import socket
from collections.abc import Mapping, Sequence


def rank_interfaces(
    master: str, ranks: int, driver_addresses: Sequence[str], interfaces: Mapping[str, Sequence[str]]
) -> set[str] | None:
    """The ``nics`` to give ``horovod.spark.run``, or None to let Horovod find them itself.

    Horovod finds the interfaces its tasks share by having each task reach the others. With a single task
    the loopback interface passes that test too, and Horovod may then hand the rank the driver's loopback
    address for its rendezvous, which only works when the executor runs on the driver's machine. On
    Kubernetes a lone executor is in another pod, so it gets the interface that holds the driver's own
    address (the pod's IP, ``spark.driver.bindAddress`` or ``spark.driver.host``), which every pod has by
    the same name. ``interfaces`` maps interface names to their IPv4 addresses.
    """
    if ranks != 1 or not master.startswith("k8s://"):
        return None
    for address in driver_addresses:
        if address.startswith("127.") or address in ("", "0.0.0.0"):
            continue
        for name, addresses in interfaces.items():
            if address in addresses:
                return {name}
    return None


def local_interfaces() -> dict[str, list[str]]:
    """This machine's (or pod's) interfaces and their IPv4 addresses."""
    import psutil

    return {
        name: [a.address for a in addresses if a.family == socket.AF_INET]
        for name, addresses in psutil.net_if_addrs().items()
    }
