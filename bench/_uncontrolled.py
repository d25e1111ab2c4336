"""Run a scenario's tasks for real (threads or processes, no control) to
measure how often the bug shows up on its own: the number races replaces."""
from __future__ import annotations

import multiprocessing
import threading
from typing import Any, Optional


def _guarded(task: Any, state: Any) -> None:
    """Run a task; an exception (a torn read, say) is a failure, not noise."""
    try:
        task(state)
    except Exception:  # noqa: BLE001
        import os

        os._exit(70) if multiprocessing.parent_process() else _errors.append(1)


_errors: list = []


def run_free(scenario: Any, variant: str = "buggy", backend: str = "thread",
             start_method: Optional[str] = None) -> bool:
    """One uncontrolled run; True when the invariant failed."""
    state = scenario.setup()
    del _errors[:]
    tasks = list(scenario.tasks_for(variant).values())
    try:
        if backend == "thread":
            workers = [threading.Thread(target=_guarded, args=(t, state)) for t in tasks]
        else:
            ctx = multiprocessing.get_context(start_method or "forkserver")
            workers = [ctx.Process(target=_guarded, args=(t, state)) for t in tasks]
        for w in workers:
            w.start()
        for w in workers:
            w.join(30)
        if _errors or any(getattr(w, "exitcode", 0) for w in workers):
            return True
        try:
            outcome = scenario.invariant(state)
        except AssertionError:
            return True
        return outcome is False
    finally:
        if scenario.teardown:
            scenario.teardown(state)
        manager = getattr(getattr(state, "data", None), "_manager", None)
        if manager is not None:
            manager.shutdown()
