"""``races.RLock``: a reentrant lock the controller models (owner + count).

Like :class:`races.Lock` the object is only an id inside the harness; the
model keeps the owner, the recursion count and where it was first acquired.
Outside the harness it is a plain ``threading.RLock``.
"""
from __future__ import annotations

import sys
import threading
from typing import Any

from .._core.agent import current
from .._core.ids import new_id
from .._core.model import OK, Model, register
from .._core.step import Step

_RealRLock = threading.RLock
_NEGATIVE_TIMEOUT = (
    "timeout value must be a non-negative number" if sys.version_info >= (3, 13) else "timeout value must be positive"
)


def lock_bound(blocking: bool, timeout: float | None) -> float | None:
    """The virtual-time bound of a lock-style ``acquire(blocking, timeout)``,
    raising CPython's ValueErrors for bad combinations."""
    if timeout is None:
        timeout = -1
    if not blocking and timeout != -1:
        raise ValueError("can't specify a timeout for a non-blocking call")
    if timeout < 0 and timeout != -1:
        raise ValueError(_NEGATIVE_TIMEOUT)
    if not blocking:
        return 0.0
    return None if timeout == -1 else float(timeout)


class RLock:
    """A reentrant lock, controlled inside the harness."""

    _kind = "RLock"
    _step_kind = "rlock"

    def __init__(self, name: str | None = None) -> None:
        self._id = new_id(self._kind)
        self._label = name or self._id.rsplit("/", 1)[-1]
        self._local: Any | None = None

    def _fallback(self) -> Any:
        if self._local is None:
            self._local = _RealRLock()
        return self._local

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        agent = current()
        if agent is None:
            return self._fallback().acquire(blocking, timeout)
        bound = lock_bound(blocking, timeout)
        return agent.step(self._step_kind, "acquire", self._id, self._label, (blocking,), bound)

    def release(self) -> None:
        agent = current()
        if agent is None:
            self._fallback().release()
            return
        agent.step(self._step_kind, "release", self._id, self._label)

    def _is_owned(self) -> bool:
        agent = current()
        if agent is None:
            return self._fallback()._is_owned()
        return agent.step(self._step_kind, "is_owned", self._id, self._label)

    __enter__ = acquire

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __getstate__(self) -> dict[str, Any]:
        return {"_id": self._id, "_label": self._label, "_local": None}

    def __repr__(self) -> str:
        return f"<races.RLock {self._label}>"


@register("rlock")
class RLockModel(Model):
    """Owner, recursion count and first acquisition site."""

    def __init__(self, obj: str, label: str, run: Any) -> None:
        super().__init__(obj, label, run)
        self.owner: str | None = None
        self.count = 0
        self.site = "?"

    def enabled(self, task: str, step: Step) -> bool:
        if step.name == "acquire":
            return self.owner is None or self.owner == task
        return True

    def apply(self, task: str, step: Step) -> tuple:
        if step.name == "acquire":
            if self.owner is None:
                self.owner, self.count, self.site = task, 1, step.location
                return ("ok", True)
            if self.owner == task:
                self.count += 1
                return ("ok", True)
            return ("ok", False)
        if step.name == "release":
            if self.owner != task:
                return ("raise", RuntimeError("cannot release un-acquired lock"))
            self.count -= 1
            if self.count == 0:
                self.owner = None
            return OK
        if step.name == "is_owned":
            return ("ok", self.owner == task)
        return OK

    def waits_for(self, task: str, step: Step) -> list[str]:
        if step.name == "acquire" and self.owner is not None and self.owner != task:
            return [self.owner]
        return []

    def blocked_reason(self, task: str, step: Step) -> str:
        return (
            f"waits for {self.label} ({step.location}), held by {self.owner} "
            f"(acquired at {self.site}, {self.count} time{'s' if self.count != 1 else ''})"
        )

    def held_by(self, task: str) -> list[str]:
        return [f"{self.label} (acquired at {self.site})"] if self.owner == task else []

    def task_ended(self, task: str) -> None:
        if self.owner == task:
            self.run.warnings.append(
                f"task {task!r} ended holding {self.label} (acquired at {self.site})"
            )
