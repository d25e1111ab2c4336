"""``races.Event``: a flag the controller models.  ``wait`` is enabled once
the flag is set; a timed wait returns False when virtual time runs out.
Outside the harness it is a ``threading.Event``; a flag set in ``setup``
holds in the run, and the run's final flag is mirrored back for the invariant.
"""
from __future__ import annotations

import threading
import weakref
from typing import Any

from .._core.agent import current
from .._core.ids import new_id
from .._core.model import OK, Model, register
from .._core.step import Step

_RealEvent = threading.Event
_made: dict[str, weakref.ref] = {}


class Event:
    """An event flag, controlled inside the harness."""

    _kind = "Event"

    def __init__(self, name: str | None = None) -> None:
        self._id = new_id(self._kind)
        self._label = name or self._id.rsplit("/", 1)[-1]
        self._local: Any | None = None
        if current() is None:  # made by setup(): the model may start from it
            _made[self._id] = weakref.ref(self)

    def _fallback(self) -> Any:
        if self._local is None:
            self._local = _RealEvent()
        return self._local

    def _step(self, name: str, timeout: float | None = None) -> Any:
        agent = current()
        assert agent is not None
        return agent.step("event", name, self._id, self._label, (), timeout, depth=3)

    def is_set(self) -> bool:
        if current() is None:
            return self._fallback().is_set()
        return self._step("is_set")

    isSet = is_set

    def set(self) -> None:
        if current() is None:
            self._fallback().set()
            return
        self._step("set")

    def clear(self) -> None:
        if current() is None:
            self._fallback().clear()
            return
        self._step("clear")

    def wait(self, timeout: float | None = None) -> bool:
        if current() is None:
            return self._fallback().wait(timeout)
        bound = None if timeout is None else max(float(timeout), 0.0)
        return self._step("wait", bound)

    def __getstate__(self) -> dict[str, Any]:
        return {"_id": self._id, "_label": self._label, "_local": None}

    def __repr__(self) -> str:
        return f"<races.Event {self._label}>"


@register("event")
class EventModel(Model):
    """The flag and who last set or cleared it."""

    def __init__(self, obj: str, label: str, run: Any) -> None:
        super().__init__(obj, label, run)
        ref = _made.get(obj)
        self.made = ref() if ref is not None else None
        # a flag set in setup() (outside the harness) holds in the run
        self.flag = self.made is not None and self.made._local is not None and self.made._local.is_set()
        self.cleared_at = ""

    def enabled(self, task: str, step: Step) -> bool:
        return self.flag if step.name == "wait" else True

    def apply(self, task: str, step: Step) -> tuple:
        if step.name == "wait":
            return ("ok", True)
        if step.name == "set":
            self.flag = True
        elif step.name == "clear":
            self.flag = False
            self.cleared_at = f"{task} at {step.location}"
        elif step.name == "is_set":
            return ("ok", self.flag)
        if self.made is not None:  # mirror into setup()'s object, for the invariant
            local = self.made._fallback()
            local.set() if self.flag else local.clear()
        return OK

    def blocked_reason(self, task: str, step: Step) -> str:
        extra = f" (cleared by {self.cleared_at})" if self.cleared_at else ""
        return f"waits for Event {self.label} at {step.location}, which no task will set{extra}"
