"""What ``races.point`` consults when no controlled agent is bound: the stress
mode's rendezvous and delays (see :mod:`races.stress_mode`).  Kept in its own
tiny module so that ``import races`` stays light."""
from __future__ import annotations

import threading
from typing import Any, Optional


class Hooks:
    def __init__(self) -> None:
        self.active = 0
        self.tls = threading.local()
        self.process_task: Optional[Any] = None
        self.process_thread: Optional[int] = None
        self._lock = threading.Lock()

    def enter(self) -> None:
        with self._lock:
            self.active += 1

    def leave(self) -> None:
        with self._lock:
            self.active -= 1

    def task(self) -> Optional[Any]:
        task = getattr(self.tls, "task", None)
        if task is None and self.process_task is not None and threading.get_ident() == self.process_thread:
            task = self.process_task
        return task

    def point(self, name: str) -> None:
        task = self.task()
        if task is not None:
            task.point(name)


hooks = Hooks()
