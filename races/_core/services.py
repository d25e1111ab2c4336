"""Service processes races keeps warm across runs (task templates, the shared
Manager), and the parked threads of its task-thread pool.  Like
multiprocessing's forkserver and resource tracker they are not tasks: leak
checks ask :func:`service_pids` which processes and :func:`service_threads`
which threads to leave alone."""
from __future__ import annotations

import sys
import threading
from typing import List


def service_pids() -> List[int]:
    pids: List[int] = []
    for name in ("races._core.template", "races._core.shared_manager"):
        module = sys.modules.get(name)
        if module is not None:
            pids.extend(module.service_pids())
    return pids


def service_threads() -> List[threading.Thread]:
    module = sys.modules.get("races._core.thread_transport")
    return module.idle_threads() if module is not None else []
