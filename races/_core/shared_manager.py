"""``races.manager()``: one warm ``multiprocessing.Manager`` per start method.

Starting a Manager server costs 6 ms (fork) to 60 ms (spawn) here, more than
the controlled run that uses it.  A test that runs a scenario a hundred times
wants fresh *state* per run, not a fresh server: ``setup()`` can call
``races.manager().dict(...)`` to get a new proxy on a server that stays up for
the life of the process (stopped at exit or by :func:`shutdown`), like the
forkserver.  Code that is about the Manager's own lifetime (a Manager shut
down under its users) should start its own with ``races.mp_context().Manager()``.

The server runs on the CPU this process's runs use (:mod:`.affinity`): only
one task runs at a time, and its proxy calls then wake the server on the same
core.  A pooled task thread keeps its proxies' connection to it from task
to task (:mod:`.thread_transport`), and its shared objects are created in one
request instead of three (:mod:`.warm_manager`).
"""
from __future__ import annotations

import atexit
import os
import threading
from typing import Any, Dict, List, Tuple

from . import affinity, patches

_managers: Dict[Tuple[str, int], Any] = {}
_lock = threading.Lock()


def manager() -> Any:
    """A running SyncManager (a :class:`~.warm_manager.WarmManager`) for the
    current run's start method."""
    from .runner import mp_context

    ctx = mp_context()
    key = (ctx.get_start_method(), os.getpid())
    with _lock:
        found = _managers.get(key)
        if found is not None and found._process.is_alive():
            return found
        from .warm_manager import WarmManager

        instance = WarmManager(ctx=ctx)
        cpu = affinity.choose()
        # the server on the runs' core: a proxy call from a task is then a
        # same-core round trip (~70 µs here, against ~135 µs across cores)
        pin = (affinity.pin_thread, (cpu,)) if cpu is not None else (None, ())
        patches._real_manager_start(instance, *pin)  # not tracked: it outlives the run
        _managers[key] = instance
        return instance


def shutdown() -> None:
    with _lock:
        found = [m for (method, pid), m in _managers.items() if pid == os.getpid()]
        _managers.clear()
    for m in found:
        try:
            m.shutdown()
        except Exception:  # noqa: BLE001
            pass


def addresses() -> List[Any]:
    """The addresses of this process's warm Manager servers that are up."""
    return [m.address for (method, pid), m in list(_managers.items())
            if pid == os.getpid() and m._process.is_alive()]


def skip_inherited_increfs() -> None:
    """In a task process forked from the controller (``fork``), before its
    bootstrap: the proxies to the warm servers it inherited skip their
    after-fork ``incref``, and with it the ``decref`` at exit (two fresh
    connections, ~0.5 ms a task).  The controller's reference to each object
    outlives the task's use of it: a run waits for its tasks (an exploration
    for their exits) before it lets go of its state."""
    warm = [m.address for m in list(_managers.values())]
    if not warm:
        return
    from multiprocessing import util
    from multiprocessing.managers import BaseProxy

    registry = util._afterfork_registry  # type: ignore[attr-defined]
    for key in list(registry.keys()):
        if key[2] is not BaseProxy._after_fork:  # type: ignore[attr-defined]
            continue
        proxy = registry.get(key)
        if proxy is not None and proxy._token.address in warm:
            del registry[key]
            proxy._manager = None  # as _after_fork does: the parent's manager object is not ours


def service_pids() -> List[int]:
    return [m._process.pid for (method, pid), m in _managers.items() if pid == os.getpid()]


atexit.register(shutdown)
