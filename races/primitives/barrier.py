"""``races.Barrier``: a barrier the controller models.

``wait`` is a step that registers the arrival.  The last of ``parties`` to
arrive runs the ``action`` in its own task (as CPython does) and then a
``release`` step lets the whole generation pass; the others stand at a
``passed`` step that is enabled once their generation is released or broken.
A timed wait that runs out of virtual time breaks the barrier.  Outside the
harness it is a ``threading.Barrier``.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from .._core.agent import current
from .._core.ids import new_id
from .._core.model import OK, Model, register
from .._core.step import Step

BrokenBarrierError = threading.BrokenBarrierError
_RealBarrier = threading.Barrier


class Barrier:
    """A barrier for ``parties`` tasks, controlled inside the harness."""

    _kind = "Barrier"

    def __init__(
        self,
        parties: int,
        action: Callable[[], Any] | None = None,
        timeout: float | None = None,
        name: str | None = None,
    ) -> None:
        self._id = new_id(self._kind)
        self._label = name or self._id.rsplit("/", 1)[-1]
        self._parties = parties
        self._action = action
        self._timeout = timeout
        self._local: Any | None = None

    def _fallback(self) -> Any:
        if self._local is None:
            self._local = _RealBarrier(self._parties, self._action, self._timeout)
        return self._local

    def _step(self, name: str, args: tuple = (), timeout: float | None = None) -> Any:
        agent = current()
        assert agent is not None
        return agent.step("barrier", name, self._id, self._label, (self._parties, *args), timeout, depth=3)

    def wait(self, timeout: float | None = None) -> int:
        if current() is None:
            return self._fallback().wait(timeout)
        if timeout is None:
            timeout = self._timeout
        role, index, generation = self._step("wait")
        if role == "last":
            try:
                if self._action is not None:
                    self._action()
            except BaseException:
                self._step("break", (generation,))
                raise
            self._step("release", (generation,))
            return index
        bound = None if timeout is None else max(float(timeout), 0.0)
        self._step("passed", (generation,), bound)
        return index

    def reset(self) -> None:
        if current() is None:
            self._fallback().reset()
            return
        self._step("reset")

    def abort(self) -> None:
        if current() is None:
            self._fallback().abort()
            return
        self._step("abort")

    @property
    def parties(self) -> int:
        return self._parties

    @property
    def n_waiting(self) -> int:
        if current() is None:
            return self._fallback().n_waiting
        return self._step("n_waiting")

    @property
    def broken(self) -> bool:
        if current() is None:
            return self._fallback().broken
        return self._step("broken")

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_local"] = None
        return state

    def __repr__(self) -> str:
        return f"<races.Barrier {self._label} ({self._parties} parties)>"


@register("barrier")
class BarrierModel(Model):
    """Arrivals of the current generation and how each generation ended."""

    def __init__(self, obj: str, label: str, run: Any) -> None:
        super().__init__(obj, label, run)
        self.parties = 0
        self.generation = 0
        self.arrived: list[tuple] = []  # (task, location) of the filling generation
        self.state = "filling"  # filling | action | broken
        self.releaser: str | None = None
        self.outcome: dict[int, str] = {}  # generation -> "passed" | "broken"

    def enabled(self, task: str, step: Step) -> bool:
        self.parties = step.args[0]
        if step.name == "wait":
            return self.state != "action"
        if step.name == "passed":
            return step.args[1] in self.outcome
        return True

    def _break(self) -> None:
        if self.generation not in self.outcome:
            self.outcome[self.generation] = "broken"
        self.generation += 1
        self.arrived = []
        self.state = "broken"
        self.releaser = None

    def apply(self, task: str, step: Step) -> tuple:
        self.parties = step.args[0]
        name = step.name
        if name == "wait":
            if self.state == "broken":
                return ("raise", BrokenBarrierError())
            index = len(self.arrived)
            self.arrived.append((task, step.location))
            if len(self.arrived) >= self.parties:
                self.state, self.releaser = "action", task
                return ("ok", ("last", index, self.generation))
            return ("ok", ("wait", index, self.generation))
        if name == "release":
            self.outcome[self.generation] = "passed"
            self.generation += 1
            self.arrived = []
            self.state, self.releaser = "filling", None
            return OK
        if name in ("break", "abort"):
            self._break()
            return OK
        if name == "passed":
            if self.outcome[step.args[1]] == "passed":
                return OK
            return ("raise", BrokenBarrierError())
        if name == "reset":
            if self.arrived:
                self.outcome[self.generation] = "broken"
                self.generation += 1
                self.arrived = []
            self.state, self.releaser = "filling", None
            return OK
        if name == "n_waiting":
            return ("ok", len(self.arrived) if self.state == "filling" else 0)
        if name == "broken":
            return ("ok", self.state == "broken")
        return OK

    def on_timeout(self, task: str, step: Step) -> tuple:
        # a waiter that times out breaks the barrier for everyone
        if step.args[1] == self.generation:
            self._break()
        return ("raise", BrokenBarrierError())

    def waits_for(self, task: str, step: Step) -> list[str]:
        if step.name == "wait" and self.releaser is not None and self.releaser != task:
            return [self.releaser]
        return []

    def blocked_reason(self, task: str, step: Step) -> str:
        if step.name == "wait":
            return (
                f"waits at Barrier {self.label} ({step.location}) while {self.releaser} "
                "runs its action"
            )
        others = ", ".join(t for t, _ in self.arrived)
        return (
            f"waits at Barrier {self.label} ({len(self.arrived)} of {self.parties} parties arrived: "
            f"{others}) at {step.location}, and no other task will arrive"
        )

    def task_ended(self, task: str) -> None:
        if self.releaser == task and self.state == "action":
            self._break()  # the last party died inside the action
