"""What the tests count as left behind: task threads and task processes.

races's service processes (task templates, the shared Manager), the forkserver
and the resource tracker are not tasks."""
from __future__ import annotations

import threading

import psutil

from races._core.services import service_pids


def task_processes():
    """Live child processes that are tasks."""
    services = set(service_pids())
    out = []
    for child in psutil.Process().children(recursive=True):
        try:
            cmd = " ".join(child.cmdline())
            if child.status() == psutil.STATUS_ZOMBIE:
                continue
        except psutil.Error:
            continue
        if child.pid in services or "forkserver" in cmd or "resource_tracker" in cmd:
            continue
        out.append(child.pid)
    return out


def task_threads(prefix: str = "races:"):
    return [t.name for t in threading.enumerate() if t.name.startswith(prefix)]
