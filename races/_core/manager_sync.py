"""A Manager's locks, events and queues, controlled in patch mode.

``Manager().Lock()`` is a proxy to a ``threading.Lock`` living in the
Manager's server process: an ``acquire`` that must wait blocks *inside the
server*, where the controller cannot see it, so a double acquire or a
``get`` on an empty Manager queue would only end by the wall-clock timeout.
Inside the harness (a task or ``setup()``, patch mode), the synchronising
factories of :class:`multiprocessing.managers.SyncManager` therefore make
the controlled primitive the proxy stands for; like a proxy, it is shared
by every task of either backend (its state lives in the controller) and
pickles freely.  Deadlocks and blocked waits on them are diagnosed at once.

The data proxies (``dict``, ``list``, ``Namespace``, ``Value``, ``Array``)
stay real Manager objects: every call on them is a step
(:mod:`races._core.patches`).  A Manager queue is a ``queue.Queue`` in the
server, so its sizes are exact: the controlled twin is a ``JoinableQueue``
(``task_done``/``join`` included) without the stale view of a
``multiprocessing.Queue`` (:mod:`races.primitives.queue`).  Outside the harness the factories are the real ones.
"""
from __future__ import annotations

from multiprocessing import managers
from typing import Any, Callable


def _primitives() -> Any:
    from .. import primitives

    return primitives


def _lock(manager: Any) -> Any:
    return _primitives().Lock()


def _rlock(manager: Any) -> Any:
    return _primitives().RLock()


def _semaphore(manager: Any, value: int = 1) -> Any:
    return _primitives().Semaphore(value)


def _bounded(manager: Any, value: int = 1) -> Any:
    return _primitives().BoundedSemaphore(value)


def _condition(manager: Any, lock: Any = None) -> Any:
    p = _primitives()
    if lock is not None and not isinstance(lock, (p.Lock, p.RLock)):
        return None  # a real proxy lock: a real Condition proxy
    return p.Condition(lock)


def _event(manager: Any) -> Any:
    return _primitives().Event()


def _barrier(manager: Any, parties: int, action: Any = None, timeout: Any = None) -> Any:
    return _primitives().Barrier(parties, action, timeout)


def _queue(manager: Any, maxsize: int = 0) -> Any:
    made = _primitives().JoinableQueue(maxsize)
    made._feeder = False  # a queue.Queue in the server: no feeder thread, no stale view
    return made


FACTORIES: list[tuple[Any, str, Callable[..., Any]]] = [
    (managers.SyncManager, "Lock", _lock),
    (managers.SyncManager, "RLock", _rlock),
    (managers.SyncManager, "Semaphore", _semaphore),
    (managers.SyncManager, "BoundedSemaphore", _bounded),
    (managers.SyncManager, "Condition", _condition),
    (managers.SyncManager, "Event", _event),
    (managers.SyncManager, "Barrier", _barrier),
    (managers.SyncManager, "Queue", _queue),
    (managers.SyncManager, "JoinableQueue", _queue),
]
