"""``races.Condition``: a condition variable the controller models.

``wait`` is three steps, as in CPython: ``wait`` checks the caller owns the
lock, releases it (saving an RLock's recursion count) and joins the model's
FIFO list of waiters; ``notified`` is enabled once a ``notify`` picked the
task (a timed wait gives up when virtual time runs out); ``reacquire`` is
enabled once the lock is free and restores it.  The lock is a
:class:`races.Lock` or :class:`races.RLock` (a new RLock by default); its
model is the one the lock's own steps use.  Outside the harness it is a
``threading.Condition`` over the lock's fallback.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from .._core.agent import current
from .._core.ids import new_id
from .._core.model import OK, Model, register
from .._core.step import Step
from .lock import Lock
from .rlock import RLock

_RealCondition = threading.Condition


class Condition:
    """A condition variable over a races.Lock or races.RLock."""

    _kind = "Condition"

    def __init__(self, lock: Lock | RLock | None = None, name: str | None = None) -> None:
        self._id = new_id(self._kind)
        self._label = name or self._id.rsplit("/", 1)[-1]
        if lock is None:
            lock = RLock(f"{self._label}.lock")
        if isinstance(lock, RLock):
            kind = "rlock"
        elif isinstance(lock, Lock):
            kind = "lock"
        else:
            raise TypeError(f"races.Condition needs a races.Lock or races.RLock, not {lock!r}")
        self._lock = lock
        self._lockref = (kind, lock._id, lock._label)
        self._local: Any | None = None
        self.acquire = lock.acquire
        self.release = lock.release

    def _fallback(self) -> Any:
        if self._local is None:
            self._local = _RealCondition(self._lock._fallback())
        return self._local

    def __enter__(self) -> bool:
        return self._lock.__enter__()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()

    def _step(self, name: str, args: tuple = (), timeout: float | None = None) -> Any:
        agent = current()
        assert agent is not None
        return agent.step("condition", name, self._id, self._label, self._lockref + args, timeout, depth=4)

    def _wait(self, timeout: float | None, deadline: float | None = None) -> tuple:
        """One wait: returns (notified, virtual time it began, virtual time it ended)."""
        began = self._step("wait")
        if deadline is not None:
            timeout = deadline - began
        bound = None if timeout is None else max(float(timeout), 0.0)
        try:
            woken, ended = self._step("notified", (), bound)
        finally:
            self._step("reacquire")
        return woken, began, ended

    def wait(self, timeout: float | None = None) -> bool:
        if current() is None:
            return self._fallback().wait(timeout)
        return self._wait(timeout)[0]

    def wait_for(self, predicate: Callable[[], Any], timeout: float | None = None) -> Any:
        if current() is None:
            return self._fallback().wait_for(predicate, timeout)
        endtime: float | None = None
        result = predicate()
        while not result:
            if timeout is None:
                self._wait(None)
            elif endtime is None:
                _, began, now = self._wait(timeout)
                endtime = began + timeout
            else:
                if endtime - now <= 0:
                    break
                _, _, now = self._wait(None, deadline=endtime)
            result = predicate()
        return result

    def notify(self, n: int = 1) -> None:
        if current() is None:
            self._fallback().notify(n)
            return
        self._step("notify", (n,))

    def notify_all(self) -> None:
        if current() is None:
            self._fallback().notify_all()
            return
        self._step("notify_all")

    notifyAll = notify_all

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_local"] = None
        del state["acquire"], state["release"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.acquire = self._lock.acquire
        self.release = self._lock.release

    def __repr__(self) -> str:
        return f"<races.Condition {self._label} over {self._lock!r}>"


@register("condition")
class ConditionModel(Model):
    """The FIFO list of waiters, who was notified, and the saved lock counts.

    Step args start with ``(lock kind, lock id, lock label)``; the lock's own
    model (``owner``, ``site`` and, for an RLock, ``count``) is updated in place.
    """

    def __init__(self, obj: str, label: str, run: Any) -> None:
        super().__init__(obj, label, run)
        self.waiters: list[str] = []
        self.notified: list[str] = []
        self.saved: dict[str, int] = {}
        self.wait_site: dict[str, str] = {}

    def _lock(self, step: Step) -> Any:
        kind, obj, label = step.args[:3]
        return self.run.model_for(Step(kind, "acquire", obj, label))

    def enabled(self, task: str, step: Step) -> bool:
        if step.name == "notified":
            return task in self.notified
        if step.name == "reacquire":
            return self._lock(step).owner is None
        return True

    def apply(self, task: str, step: Step) -> tuple:
        lock = self._lock(step)
        name = step.name
        if name == "wait":
            if lock.owner != task:
                return ("raise", RuntimeError("cannot wait on un-acquired lock"))
            self.saved[task] = getattr(lock, "count", 1)
            lock.owner = None
            if hasattr(lock, "count"):
                lock.count = 0
            self.waiters.append(task)
            self.wait_site[task] = step.location
            return ("ok", self.run.clock.now)
        if name == "notified":
            self.notified.remove(task)
            return ("ok", (True, self.run.clock.now))
        if name == "reacquire":
            lock.owner, lock.site = task, step.location
            if hasattr(lock, "count"):
                lock.count = self.saved.get(task, 1)
            self.saved.pop(task, None)
            return OK
        if name in ("notify", "notify_all"):
            if lock.owner != task:
                return ("raise", RuntimeError("cannot notify on un-acquired lock"))
            n = len(self.waiters) if name == "notify_all" else step.args[3]
            woken, self.waiters = self.waiters[:max(n, 0)], self.waiters[max(n, 0):]
            self.notified.extend(woken)
            return OK
        return OK

    def on_timeout(self, task: str, step: Step) -> tuple:
        if task in self.waiters:
            self.waiters.remove(task)
        return ("ok", (False, self.run.clock.now))

    def waits_for(self, task: str, step: Step) -> list[str]:
        if step.name == "reacquire":
            owner = self._lock(step).owner
            return [owner] if owner is not None and owner != task else []
        return []

    def blocked_reason(self, task: str, step: Step) -> str:
        if step.name == "reacquire":
            lock = self._lock(step)
            return (
                f"waits to reacquire {lock.label} after waiting on Condition {self.label} "
                f"({step.location}), held by {lock.owner} (acquired at {lock.site})"
            )
        place = self.waiters.index(task) + 1 if task in self.waiters else 0
        queue = f" ({place} of {len(self.waiters)} waiters)" if place else ""
        return (
            f"waits on Condition {self.label} at {step.location}{queue}, "
            "which no task will notify"
        )

    def task_ended(self, task: str) -> None:
        for waiting in (self.waiters, self.notified):
            if task in waiting:
                waiting.remove(task)
        self.saved.pop(task, None)
