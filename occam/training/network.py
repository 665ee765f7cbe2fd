"""The network interfaces of the driver's machine (or pod), for the backend's choice of Horovod's interface."""

from __future__ import annotations

import socket


def local_interfaces() -> dict[str, list[str]]:
    """This machine's (or pod's) interfaces and their IPv4 addresses."""
    import psutil

    return {
        name: [a.address for a in addresses if a.family == socket.AF_INET]
        for name, addresses in psutil.net_if_addrs().items()
    }
