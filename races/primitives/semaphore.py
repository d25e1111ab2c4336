"""``races.Semaphore`` and ``races.BoundedSemaphore``: a counter the
controller models.  ``acquire`` is enabled while the counter is positive.
Outside the harness they are ``threading.Semaphore`` / ``BoundedSemaphore``.
"""
from __future__ import annotations

import threading
import weakref
from typing import Any

from .._core.agent import current
from .._core.ids import new_id
from .._core.model import OK, Model, register
from .._core.step import Step

_RealSemaphore = threading.Semaphore
_RealBoundedSemaphore = threading.BoundedSemaphore
_made: dict[str, weakref.ref] = {}


class Semaphore:
    """A counting semaphore, controlled inside the harness."""

    _kind = "Semaphore"
    _step_kind = "semaphore"

    def __init__(self, value: int = 1, name: str | None = None) -> None:
        if value < 0:
            raise ValueError("semaphore initial value must be >= 0")
        self._id = new_id(self._kind)
        self._label = name or self._id.rsplit("/", 1)[-1]
        self._initial = value
        self._local: Any | None = None
        if current() is None:  # made by setup(): the model may start from it
            _made[self._id] = weakref.ref(self)

    def _fallback(self) -> Any:
        if self._local is None:
            if self._bounded():
                # built by hand: BoundedSemaphore.__init__ looks up the module's
                # ``Semaphore``, which patch mode may have replaced
                real = _RealSemaphore.__new__(_RealBoundedSemaphore)
                _RealSemaphore.__init__(real, self._initial)
                real._initial_value = self._initial  # type: ignore[attr-defined]
            else:
                real = _RealSemaphore(self._initial)  # type: ignore[assignment]
            self._local = real
        return self._local

    def _bounded(self) -> bool:
        return False

    def _spec(self) -> tuple:
        return (self._initial, self._bounded())

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        agent = current()
        if agent is None:
            return self._fallback().acquire(blocking, timeout)
        if not blocking and timeout is not None:
            raise ValueError("can't specify timeout for non-blocking acquire")
        bound = 0.0 if not blocking else (None if timeout is None else max(float(timeout), 0.0))
        return agent.step(self._step_kind, "acquire", self._id, self._label, self._spec(), bound)

    def release(self, n: int = 1) -> None:
        agent = current()
        if agent is None:
            self._fallback().release(n)
            return
        if n < 1:
            raise ValueError("n must be one or more")
        agent.step(self._step_kind, "release", self._id, self._label, self._spec() + (n,))

    __enter__ = acquire

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_local"] = None
        return state

    def __repr__(self) -> str:
        return f"<races.{type(self).__name__} {self._label}>"


class BoundedSemaphore(Semaphore):
    """A semaphore whose releases may not exceed its acquisitions."""

    _kind = "BoundedSemaphore"

    def _bounded(self) -> bool:
        return True


@register("semaphore")
class SemaphoreModel(Model):
    """The counter, and who acquired without releasing (for reports)."""

    def __init__(self, obj: str, label: str, run: Any) -> None:
        super().__init__(obj, label, run)
        self.value: int | None = None
        self.initial = 0
        self.bounded = False
        self.holders: list[tuple] = []  # (task, site) per unreleased acquire

    def _configure(self, step: Step) -> None:
        if self.value is None:
            self.initial, self.bounded = step.args[0], step.args[1]
            self.value = self.initial
            local = self._local()
            if local is not None:  # acquired or released in setup(), outside the harness
                self.value = local._value

    def _local(self) -> Any:
        ref = _made.get(self.obj)
        made = ref() if ref is not None else None
        return made._fallback() if made is not None else None

    def _write_back(self) -> None:
        local = self._local()
        if local is not None:
            local._value = self.value

    def enabled(self, task: str, step: Step) -> bool:
        self._configure(step)
        if step.name == "acquire":
            return bool(self.value)
        return True

    def apply(self, task: str, step: Step) -> tuple:
        self._configure(step)
        assert self.value is not None
        if step.name == "acquire":
            if not self.value:
                return ("ok", False)
            self.value -= 1
            self.holders.append((task, step.location))
            self._write_back()
            return ("ok", True)
        if step.name == "release":
            n = step.args[2]
            if self.bounded and self.value + n > self.initial:
                return ("raise", ValueError("Semaphore released too many times"))
            self.value += n
            for _ in range(n):
                mine = [i for i, h in enumerate(self.holders) if h[0] == task]
                if mine:
                    del self.holders[mine[0]]
                elif self.holders:
                    del self.holders[0]
            self._write_back()
            return OK
        return OK

    def blocked_reason(self, task: str, step: Step) -> str:
        kind = "BoundedSemaphore" if self.bounded else "Semaphore"
        holders = ", ".join(f"{t} at {site}" for t, site in self.holders)
        held = f"; acquired by {holders}" if holders else ""
        return (
            f"waits forever at {kind} {self.label} ({step.location}): its value is 0"
            f"{held}, and no task will release it"
        )

    def held_by(self, task: str) -> list[str]:
        return [f"{self.label} (acquired at {site})" for t, site in self.holders if t == task]
