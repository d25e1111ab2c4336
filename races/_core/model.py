"""The controller's model of primitives: what decides whether a step would block.

Each primitive family registers one :class:`Model` subclass under its step
``kind``.  The controller keeps one model instance per object id (or one per
kind for steps that have no object, like ``point`` and ``sleep``) and asks it:

* ``enabled(task, step)``: would the step complete without blocking now?
* ``apply(task, step)``: perform it in the model; return the reply for the task.
* ``on_timeout(task, step)``: the reply when a timed wait expires instead.
* ``waits_for`` / ``blocked_reason`` / ``held_by``: explain a blocked task.

Adding a primitive means one module with a task-side class and a model here.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Dict, List, Type

from .step import Step

if TYPE_CHECKING:  # pragma: no cover
    from .controller import Controller

OK = ("ok", None)


class Model:
    """Base model: every step is enabled and does nothing."""

    kind = ""
    # set by the controller when it makes the model: enabled() (and apply()) are the
    # base's, so the step never blocks (and replies OK) and the hot path skips the calls
    _races_always = False
    _races_plain = False

    def __init__(self, obj: str, label: str, run: "Controller") -> None:
        self.obj = obj
        self.label = label
        self.run = run

    def enabled(self, task: str, step: Step) -> bool:
        return True

    def apply(self, task: str, step: Step) -> tuple:
        return OK

    def on_timeout(self, task: str, step: Step) -> tuple:
        return ("ok", False)

    def waits_for(self, task: str, step: Step) -> List[str]:
        """Tasks whose progress could unblock ``task`` (for wait-for cycles)."""
        return []

    def blocked_reason(self, task: str, step: Step) -> str:
        return f"waits at {step.describe()} ({step.location})"

    def held_by(self, task: str) -> List[str]:
        """What ``task`` holds in this object, as report phrases."""
        return []

    def task_ended(self, task: str) -> None:
        """Called when ``task`` ends, normally or not."""


_REGISTRY: Dict[str, Type[Model]] = {}


def register(kind: str) -> Callable[[Type[Model]], Type[Model]]:
    """Class decorator: make ``cls`` the model of steps of ``kind``."""

    def deco(cls: Type[Model]) -> Type[Model]:
        cls.kind = kind
        _REGISTRY[kind] = cls
        return cls

    return deco


def model_class(kind: str) -> Type[Model]:
    try:
        return _REGISTRY[kind]
    except KeyError:
        raise KeyError(f"no model registered for steps of kind {kind!r}") from None


@register("start")
class StartModel(Model):
    """A task's first step: it has not run any code yet."""


@register("point")
class PointModel(Model):
    """An explicit ``races.point(name)``: always enabled."""


@register("manager")
class ManagerCallModel(Model):
    """A method call on a ``multiprocessing.Manager`` proxy: always enabled.

    The data lives in the real Manager server; because only one task runs at a
    time the call completes without waiting.
    """


@register("sleep")
class SleepModel(Model):
    """``time.sleep(t)``: a yield on virtual time.

    Sleeping never restricts the order (a real sleeper may be delayed
    arbitrarily), but passing the step moves the virtual clock to the time the
    sleeper would wake, so reports show consistent times at no wall-clock cost.
    """

    def apply(self, task: str, step: Step) -> tuple:
        seconds = float(step.args[0]) if step.args else 0.0
        record = self.run.task(task)
        self.run.clock.advance_to(record.since + max(seconds, 0.0))
        return OK
