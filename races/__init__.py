"""races: deterministic concurrency tests and a race detector for Python
threads and multiprocessing.

Tasks run one at a time; at every sync point the controller decides who goes
next.  A schedule reproduces a failure every time; a token replays a run.
"""
from __future__ import annotations

from typing import Optional

from ._core.agent import current as _current
from ._core.errors import RacesError, ReplayError, ScheduleError, SetupError, TaskAborted, TaskError
from ._core.result import Result
from ._core.explore import explore, check, ScheduleFailure
from ._core.runner import mp_context, replay, run
from ._core.shared_manager import manager
from ._core.step import FAILURE_KINDS, Failure, Step, TraceEntry
from .detect import Race
from .shared import shared
from .primitives import (
    Array,
    Barrier,
    BoundedSemaphore,
    BrokenBarrierError,
    Condition,
    Event,
    JoinableQueue,
    Lock,
    Pipe,
    Queue,
    RLock,
    Semaphore,
    SimpleQueue,
    Value,
)
from .stress import StressResult, stress
from .stress import _hooks as _stress_hooks

__version__ = "0.1.0"


def point(name: str) -> None:
    """An explicit sync point.  Outside the harness it does nothing."""
    agent = _current()
    if agent is not None:
        if not isinstance(name, str) or not name or ":" in name:
            raise ValueError(f"point name {name!r} is invalid: use a non-empty string without ':'")
        agent.step("point", name)
    elif _stress_hooks.active:  # races.stress: a real rendezvous/delay, see races/stress.py
        _stress_hooks.point(name)


def shutdown() -> None:
    """Stop the service processes races keeps warm (task templates, ``races.manager()``).

    They also stop by themselves when this process exits."""
    from ._core import shared_manager, template

    template.shutdown()
    shared_manager.shutdown()


def in_task() -> Optional[str]:
    """The name of the controlled task the caller runs in, or None."""
    agent = _current()
    return agent.name if agent is not None else None


__all__ = [
    "Array",
    "Barrier",
    "BoundedSemaphore",
    "BrokenBarrierError",
    "Condition",
    "Event",
    "FAILURE_KINDS",
    "Failure",
    "JoinableQueue",
    "Lock",
    "Pipe",
    "Queue",
    "Race",
    "RLock",
    "RacesError",
    "ReplayError",
    "Result",
    "ScheduleError",
    "ScheduleFailure",
    "Semaphore",
    "SetupError",
    "SimpleQueue",
    "Step",
    "StressResult",
    "TaskAborted",
    "TaskError",
    "TraceEntry",
    "Value",
    "check",
    "explore",
    "in_task",
    "manager",
    "mp_context",
    "point",
    "replay",
    "run",
    "shared",
    "shutdown",
    "stress",
]
