"""races: deterministic concurrency tests and a race detector for Python
threads and multiprocessing.

Tasks run one at a time; at every sync point the controller decides who goes
next.  A schedule reproduces a failure every time; a token replays a run.

Importing ``races`` is cheap (the pytest plugin is loaded by every pytest
run): ``races.point`` and ``races.in_task`` are defined here, everything else
is imported from its module on first use (PEP 562).
"""
from __future__ import annotations

import importlib
from typing import Any, Dict, List, Optional, Tuple

from ._core.agent import _tls
from ._core.agent import current as _current
from ._stress_hook import hooks as _stress_hooks

__version__ = "0.1.0"


def point(name: str) -> None:
    """An explicit sync point.  Outside the harness it does nothing."""
    agent = getattr(_tls, "agent", None) or _current()  # a task thread's agent first: every step asks
    if agent is not None:
        if not isinstance(name, str) or not name or ":" in name:
            raise ValueError(f"point name {name!r} is invalid: use a non-empty string without ':'")
        agent.step("point", name)
    elif _stress_hooks.active:  # races.stress: a real rendezvous/delay, see races/stress_mode.py
        _stress_hooks.point(name)


def in_task() -> Optional[str]:
    """The name of the controlled task the caller runs in, or None."""
    agent = _current()
    return agent.name if agent is not None else None


def shutdown() -> None:
    """Stop the service processes races keeps warm (task templates, ``races.manager()``)
    and its parked task threads.

    They also stop by themselves when this process exits."""
    from ._core import shared_manager, template, thread_transport

    shared_manager.shutdown()  # first: a Manager server started with fork holds copies of this process's descriptors
    template.shutdown()
    thread_transport.shutdown_pool()


_PRIMITIVES = (
    "Array", "Barrier", "BoundedSemaphore", "BrokenBarrierError", "Condition", "Event", "JoinableQueue",
    "Lock", "Pipe", "Queue", "RLock", "Semaphore", "SimpleQueue", "Value",
)
_LAZY: Dict[str, Tuple[str, str]] = {
    **{name: (".primitives", name) for name in _PRIMITIVES},
    **{name: ("._core.errors", name) for name in (
        "RacesError", "ReplayError", "ScheduleError", "SetupError", "TaskAborted", "TaskError")},
    **{name: ("._core.step", name) for name in ("FAILURE_KINDS", "Failure", "Step", "TraceEntry")},
    "Result": ("._core.result", "Result"),
    "run": ("._core.runner", "run"),
    "replay": ("._core.runner", "replay"),
    "mp_context": ("._core.runner", "mp_context"),
    "explore": ("._core.explore", "explore"),
    "check": ("._core.explore", "check"),
    "ScheduleFailure": ("._core.explore", "ScheduleFailure"),
    "manager": ("._core.shared_manager", "manager"),
    "Race": (".detect", "Race"),
    "shared": (".shared", "shared"),
    "stress": (".stress_mode", "stress"),
    "StressResult": (".stress_mode", "StressResult"),
    "Scenario": (".scenario", "Scenario"),
    "strategies": (".strategies", ""),
}


def __getattr__(name: str) -> Any:
    try:
        module_name, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'races' has no attribute {name!r}") from None
    module = importlib.import_module(module_name, __name__)
    value = getattr(module, attr) if attr else module
    globals()[name] = value
    return value


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = sorted(["in_task", "point", "shutdown", *_LAZY])
