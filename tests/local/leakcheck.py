"""Polls until a cluster's processes, ports and work directory are gone, and says what is left."""

from __future__ import annotations

import os
import socket
import time

import psutil


def leftovers(facts: dict) -> list[str]:
    left = []
    for pid, created, cmd in facts["processes"]:
        try:
            proc = psutil.Process(pid)
            if proc.create_time() == created and proc.status() != psutil.STATUS_ZOMBIE:
                left.append(f"process {pid} ({cmd})")
        except psutil.NoSuchProcess:
            pass
    for port in facts["ports"]:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                left.append(f"port {port} still accepts connections")
    if os.path.exists(facts["work_dir"]):
        left.append(f"work dir {facts['work_dir']}")
    if psutil.pid_exists(facts["reaper"]) and psutil.Process(facts["reaper"]).status() != psutil.STATUS_ZOMBIE:
        left.append(f"reaper {facts['reaper']}")
    return left


def wait_until_clean(facts: dict, timeout: float = 60.0) -> list[str]:
    deadline = time.monotonic() + timeout
    left = leftovers(facts)
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = leftovers(facts)
    return left
