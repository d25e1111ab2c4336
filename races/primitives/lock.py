"""``races.Lock``: a mutex the controller models.

Inside the harness the lock holds no OS resource at all: ``acquire`` is a step
that the controller enables only while the model says the lock is free, so a
task never blocks for real and a lost wake-up or a deadlock is seen in the
model.  The object is just an id, so it pickles to task processes freely.
Outside the harness it behaves as a plain ``threading.Lock``.
"""
from __future__ import annotations

import threading
from typing import Any, Dict, List, Optional

from .._core.agent import current
from .._core.ids import new_id
from .._core.model import OK, Model, register
from .._core.step import Step


class Lock:
    """A non-reentrant lock, controlled inside the harness."""

    _kind = "Lock"

    def __init__(self, name: Optional[str] = None) -> None:
        self._id = new_id(self._kind)
        self._label = name or self._id.rsplit("/", 1)[-1]
        self._local: Optional[Any] = None

    def _fallback(self) -> Any:
        if self._local is None:
            self._local = threading.Lock()
        return self._local

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        agent = current()
        if agent is None:
            return self._fallback().acquire(blocking, timeout)
        if not blocking and timeout != -1:
            raise ValueError("can't specify a timeout for a non-blocking call")
        bound = None if (timeout is None or timeout < 0) else float(timeout)
        if not blocking:
            bound = 0.0
        return agent.step("lock", "acquire", self._id, self._label, (blocking,), bound)

    def release(self) -> None:
        agent = current()
        if agent is None:
            self._fallback().release()
            return
        agent.step("lock", "release", self._id, self._label)

    def locked(self) -> bool:
        agent = current()
        if agent is None:
            return self._fallback().locked()
        return agent.step("lock", "locked", self._id, self._label)

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def __getstate__(self) -> Dict[str, Any]:
        return {"_id": self._id, "_label": self._label, "_local": None}

    def __repr__(self) -> str:
        return f"<races.Lock {self._label}>"


@register("lock")
class LockModel(Model):
    """Owner, acquisition site; a blocked acquire is disabled until release."""

    def __init__(self, obj: str, label: str, run: Any) -> None:
        super().__init__(obj, label, run)
        self.owner: Optional[str] = None
        self.site = "?"

    def enabled(self, task: str, step: Step) -> bool:
        if step.name == "acquire":
            return self.owner is None or step.timeout == 0.0
        return True

    def apply(self, task: str, step: Step) -> tuple:
        if step.name == "acquire":
            if self.owner is not None:
                return ("ok", False)
            self.owner, self.site = task, step.location
            return ("ok", True)
        if step.name == "release":
            if self.owner is None:
                return ("raise", RuntimeError("release unlocked lock"))
            self.owner = None
            return OK
        if step.name == "locked":
            return ("ok", self.owner is not None)
        return OK

    def waits_for(self, task: str, step: Step) -> List[str]:
        return [self.owner] if step.name == "acquire" and self.owner else []

    def blocked_reason(self, task: str, step: Step) -> str:
        if self.owner == task:
            return (
                f"waits for {self.label} ({step.location}), which it already holds "
                f"(acquired at {self.site}): a non-reentrant lock acquired twice; "
                "release it first or use an RLock"
            )
        return f"waits for {self.label} ({step.location}), held by {self.owner} (acquired at {self.site})"

    def held_by(self, task: str) -> List[str]:
        return [f"{self.label} (acquired at {self.site})"] if self.owner == task else []

    def task_ended(self, task: str) -> None:
        if self.owner == task:
            self.run.warnings.append(
                f"task {task!r} ended holding {self.label} (acquired at {self.site})"
            )
