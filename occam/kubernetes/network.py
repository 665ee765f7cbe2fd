"""Which network interface Horovod's ranks on executor pods use to reach the notebook's rendezvous server."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def lone_rank_interfaces(
    ranks: int, driver_addresses: Sequence[str], interfaces: Mapping[str, Sequence[str]]
) -> set[str] | None:
    """The ``nics`` to give ``horovod.spark.run`` for executors in other pods, or None to let Horovod find them.

    Horovod finds the interfaces its tasks share by having each task reach the others. With a single task
    the loopback interface passes that test too, and Horovod may then hand the rank the driver's loopback
    address for its rendezvous, which only works when the executor runs on the driver's machine. An executor
    pod is another machine, so a lone rank gets the interface that holds the driver's own address (the pod's
    IP, ``spark.driver.bindAddress`` or ``spark.driver.host``), which every pod has by the same name.
    ``interfaces`` maps interface names to their IPv4 addresses.
    """
    if ranks != 1:
        return None
    for address in driver_addresses:
        if address.startswith("127.") or address in ("", "0.0.0.0"):
            continue
        for name, addresses in interfaces.items():
            if address in addresses:
                return {name}
    return None
