"""What becomes a sync point for free inside the harness: ``time.sleep`` and
every method call on a ``multiprocessing.Manager`` proxy.

Patches are installed while a thread-backend run is active (reference
counted, so nested or concurrent runs are fine) and for the whole life of a
task process.  A patched function first asks :func:`agent.current`; outside a
task it is the original function, so other threads of the process are not
affected.
"""
from __future__ import annotations

import os
import threading
import time
from multiprocessing import managers
from typing import Any, List

from .agent import current
from .step import caller_stack

real_sleep = time.sleep
_real_callmethod = managers.BaseProxy._callmethod
_true_manager_start = managers.BaseManager.start


def _real_manager_start(manager: Any, *args: Any, **kwargs: Any) -> Any:
    """``BaseManager.start``, with patch mode suspended while the server is started
    (its registry is pickled by class name)."""
    from . import patch_mode

    with patch_mode.suspended():
        return _true_manager_start(manager, *args, **kwargs)

_lock = threading.Lock()
_depth = 0


def controlled_sleep(seconds: float) -> None:
    agent = current()
    if agent is None or agent.busy:
        real_sleep(seconds)
        return
    if seconds < 0:
        raise ValueError("sleep length must be non-negative")
    agent.step("sleep", "sleep", args=(seconds,))


_KEYED = frozenset({
    "__getitem__", "__setitem__", "__delitem__", "get", "pop", "setdefault", "__contains__",
    "__getattribute__", "__setattr__", "__delattr__",  # Namespace attributes (the race detector)
})


def controlled_callmethod(self: Any, methodname: str, args: tuple = (), kwds: dict = {}) -> Any:  # noqa: B006
    agent = current()
    if agent is None or agent.busy:
        return _real_callmethod(self, methodname, args, kwds)
    token = self._token
    key: tuple = (repr(args[0])[:60],) if args and methodname in _KEYED else ()
    key += (caller_stack(2),)  # a short user stack, for race reports
    agent.step("manager", methodname, obj=f"{token.typeid}@{token.id}", label=token.typeid, args=key)
    agent.busy = True
    try:
        return _real_callmethod(self, methodname, args, kwds)
    except (OSError, EOFError) as exc:
        if not _manager_gone(self):
            raise
        from .step import caller_location

        where = caller_location(2)
        raise _explained(
            exc,
            f"task {agent.name} used a Manager proxy ({token.typeid}.{methodname}) after the Manager "
            f"was shut down (at {where})",
        ) from exc
    finally:
        agent.busy = False


def _manager_gone(proxy: Any) -> bool:
    """True when the Manager server behind ``proxy`` no longer accepts connections."""
    try:
        conn = proxy._Client(proxy._token.address, authkey=proxy._authkey)
    except Exception:  # noqa: BLE001 - refused, no socket file, bad auth: it is gone
        return True
    try:
        conn.close()
    except OSError:
        pass
    return False


def _explained(exc: BaseException, why: str) -> BaseException:
    """``exc`` again (same type, so ``except ConnectionRefusedError`` still works)
    with ``why`` in its message."""
    text = f"{exc} — {why}" if str(exc) else why
    try:
        return type(exc)(text)
    except Exception:  # noqa: BLE001 - a type that needs other arguments
        return RuntimeError(f"{type(exc).__name__}: {text}")


def _apply() -> None:
    time.sleep = controlled_sleep  # type: ignore[assignment]
    managers.BaseProxy._callmethod = controlled_callmethod  # type: ignore[method-assign]


def _restore() -> None:
    time.sleep = real_sleep
    managers.BaseProxy._callmethod = _real_callmethod  # type: ignore[method-assign]


def install() -> None:
    """Enter a thread-backend run: patch on first entry."""
    global _depth
    with _lock:
        _depth += 1
        if _depth == 1:
            _apply()


def uninstall() -> None:
    global _depth
    with _lock:
        _depth -= 1
        if _depth == 0:
            _restore()


def _forget_agents_in_child() -> None:
    """After a fork made from a task (a Manager's server, a Pool worker under the
    fork start method), the child is not that task: it must not talk to the
    controller over the task's channel."""
    from . import agent as agent_mod

    agent_mod._tls.agent = None
    agent_mod._process_agent = None
    agent_mod._process_thread = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_agents_in_child)


def install_for_process() -> None:
    """Inside a task process: patch for good."""
    _apply()


class ManagerTracker:
    """Records every Manager started while active, so the run can shut them down."""

    def __init__(self) -> None:
        self.started: List[Any] = []

    def __enter__(self) -> "ManagerTracker":
        tracker = self
        self._previous = managers.BaseManager.__dict__["start"]  # patch mode may have its own

        def start(manager: Any, *args: Any, **kwargs: Any) -> Any:
            result = _real_manager_start(manager, *args, **kwargs)
            tracker.started.append(manager)
            return result

        managers.BaseManager.start = start  # type: ignore[method-assign, assignment]
        return self

    def __exit__(self, *exc: Any) -> None:
        managers.BaseManager.start = self._previous  # type: ignore[method-assign]

    def shutdown_all(self) -> None:
        for manager in reversed(self.started):
            try:
                manager.shutdown()
            except Exception:  # noqa: BLE001 - already gone is fine
                pass
        self.started.clear()
