"""Patch mode: inside the harness the standard factories make controlled objects.

While a run with ``patch=True`` is active, and only for calls made from a
task (or from ``setup()``, on the thread running it):

* ``multiprocessing``: the classes behind the context factories
  (``multiprocessing.synchronize.Lock/RLock/Semaphore/BoundedSemaphore/
  Condition/Event/Barrier``, ``multiprocessing.queues.Queue/JoinableQueue/
  SimpleQueue``, ``multiprocessing.connection.Pipe``,
  ``multiprocessing.sharedctypes.Value/Array``) are replaced by factories, so
  ``from multiprocessing import Lock`` bound at import time, ``ctx.Lock()`` of
  any ``get_context(...)`` context and ``multiprocessing.synchronize.Lock(ctx=...)``
  all give races objects.  ``multiprocessing.process.BaseProcess`` gets
  ``start/join/is_alive/terminate/kill/exitcode/pid`` that route a process
  started from a task to the controller (:mod:`races.primitives.process`).
* ``threading.Lock/RLock/Semaphore/BoundedSemaphore/Event/Condition/Barrier``,
  ``queue.Queue/SimpleQueue`` and ``threading.Thread.start/join/is_alive``:
  in the thread backend (for the run), and in every task process (for good,
  :func:`install_for_process`).  A Thread started in a task process is a task
  of its own running in that process (:mod:`races._core.process_threads`), so
  the threads of one process interleave under control and their threading
  objects must be controlled too; the items of a ``queue.Queue`` made there
  stay in the process (the model holds stand-ins).  A thread made by a task
  inherits the *task's* daemon flag (the harness thread it runs on is a
  daemon), as CPython's threads inherit their creator's.

A call counts only when its caller is user code: frames in the standard
library (other than ``multiprocessing/context.py``, which only forwards) and in
races itself get the real objects.  So ``threading.Event()`` made by
``Thread.__init__``, the locks inside ``queue.Queue``, the Pipe and Process a
Manager starts, and the harness's own machinery (raw ``_thread`` locks, the
real ``Thread`` methods captured in ``thread_transport``) are never turned into
steps.  Outside a run nothing is patched.

Managers started from a task are real; their proxy calls are steps
(:mod:`races._core.patches`), except that their synchronising factories
(``Lock``, ``Queue``, ``Event``...) make controlled primitives
(:mod:`races._core.manager_sync`).  A task's Managers are shut down when the task
ends, as the finalizers of its process would at exit, before its children are
waited for: a child that still uses a proxy then fails with the real
connection error, explained.
"""
from __future__ import annotations

import os
import queue as _queue_mod
import sys
import threading
from multiprocessing import connection, managers, queues, sharedctypes, synchronize
from multiprocessing import process as _mp_process
from typing import Any, Callable, Dict, List, Optional, Tuple

from . import manager_sync, patches, process_threads
from .agent import current

_STDLIB = os.path.dirname(os.__file__) + os.sep
_RACES = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_FORWARDERS = (
    os.path.join(_STDLIB, "multiprocessing", "context.py"),
    os.path.abspath(__file__),
)
_user_file_cache: Dict[str, bool] = {}


def _is_user_file(filename: str) -> bool:
    known = _user_file_cache.get(filename)
    if known is not None:
        return known
    if filename.startswith("<frozen"):
        answer = False
    elif filename.startswith("<"):
        answer = True
    elif filename.startswith(_RACES):
        answer = False
    elif "site-packages" in filename or "dist-packages" in filename:
        answer = True
    else:
        answer = not filename.startswith(_STDLIB)
    _user_file_cache[filename] = answer
    return answer


_setup_threads: Dict[int, int] = {}


class in_setup:
    """Context manager: the calling thread runs ``setup()`` (factories are patched for it)."""

    def __enter__(self) -> "in_setup":
        ident = threading.get_ident()
        _setup_threads[ident] = _setup_threads.get(ident, 0) + 1
        return self

    def __exit__(self, *exc: Any) -> None:
        ident = threading.get_ident()
        left = _setup_threads.get(ident, 1) - 1
        if left:
            _setup_threads[ident] = left
        else:
            _setup_threads.pop(ident, None)


def _controlled_here(tasks_only: bool = False) -> bool:
    """True when the caller of the patched function (two frames up) is user code
    in a task (or in setup, unless ``tasks_only``)."""
    agent = current()
    if agent is not None:
        if agent.busy:
            return False
    elif tasks_only or threading.get_ident() not in _setup_threads:
        return False
    frame: Any = sys._getframe(2)
    while frame is not None and frame.f_code.co_filename in _FORWARDERS:
        frame = frame.f_back
    return frame is not None and _is_user_file(frame.f_code.co_filename)


# -- factories ----------------------------------------------------------------------

def _factory(real: Any, build: Callable[..., Any]) -> Callable[..., Any]:
    def factory(*args: Any, **kwargs: Any) -> Any:
        if _controlled_here():
            made = build(*args, **kwargs)
            if made is not None:
                return made
        return real(*args, **kwargs)

    factory.__wrapped__ = real  # type: ignore[attr-defined]
    factory.__name__ = getattr(real, "__name__", "factory")
    factory.__qualname__ = getattr(real, "__qualname__", factory.__name__)
    factory.__doc__ = f"races patch mode: a controlled object in a task, else {factory.__name__}"
    return factory


def _races() -> Any:
    from .. import primitives

    return primitives


def _is_races_lock(lock: Any) -> bool:
    p = _races()
    return isinstance(lock, (p.Lock, p.RLock))


def _b_lock(*, ctx: Any = None) -> Any:
    return _races().Lock()


def _b_rlock(*, ctx: Any = None) -> Any:
    return _races().RLock()


def _b_semaphore(value: int = 1, *, ctx: Any = None) -> Any:
    return _races().Semaphore(value)


def _b_bounded(value: int = 1, *, ctx: Any = None) -> Any:
    return _races().BoundedSemaphore(value)


def _b_condition(lock: Any = None, *, ctx: Any = None) -> Any:
    if lock is not None and not _is_races_lock(lock):
        return None  # a real lock: a real condition
    return _races().Condition(lock)


def _b_event(*, ctx: Any = None) -> Any:
    return _races().Event()


def _b_barrier(parties: int, action: Any = None, timeout: Any = None, *, ctx: Any = None) -> Any:
    return _races().Barrier(parties, action, timeout)


def _b_queue(maxsize: int = 0, *, ctx: Any = None) -> Any:
    return _races().Queue(maxsize)


def _b_joinable(maxsize: int = 0, *, ctx: Any = None) -> Any:
    return _races().JoinableQueue(maxsize)


def _b_simple(*, ctx: Any = None) -> Any:
    return _races().SimpleQueue()


def _b_pipe(duplex: bool = True) -> Any:
    from ..primitives.pipe import Pipe

    return Pipe(duplex)


def _b_value(typecode_or_type: Any, *args: Any, lock: Any = True, ctx: Any = None) -> Any:
    if not isinstance(lock, bool) and not _is_races_lock(lock):
        return None
    from ..primitives.value import Value

    return Value(typecode_or_type, *args, lock=lock)


def _b_array(typecode_or_type: Any, size_or_initializer: Any, *, lock: Any = True, ctx: Any = None) -> Any:
    if not isinstance(lock, bool) and not _is_races_lock(lock):
        return None
    from ..primitives.value import Array

    return Array(typecode_or_type, size_or_initializer, lock=lock)


_MP_FACTORIES: List[Tuple[Any, str, Callable[..., Any]]] = [
    (synchronize, "Lock", _b_lock),
    (synchronize, "RLock", _b_rlock),
    (synchronize, "Semaphore", _b_semaphore),
    (synchronize, "BoundedSemaphore", _b_bounded),
    (synchronize, "Condition", _b_condition),
    (synchronize, "Event", _b_event),
    (synchronize, "Barrier", _b_barrier),
    (queues, "Queue", _b_queue),
    (queues, "JoinableQueue", _b_joinable),
    (queues, "SimpleQueue", _b_simple),
    (connection, "Pipe", _b_pipe),
    (sharedctypes, "Value", _b_value),
    (sharedctypes, "Array", _b_array),
    *manager_sync.FACTORIES,
]


def _t_semaphore(value: int = 1) -> Any:
    return _races().Semaphore(value)


def _t_bounded(value: int = 1) -> Any:
    return _races().BoundedSemaphore(value)


def _t_condition(lock: Any = None) -> Any:
    if lock is not None and not _is_races_lock(lock):
        return None
    return _races().Condition(lock)


def _t_barrier(parties: int, action: Any = None, timeout: Any = None) -> Any:
    return _races().Barrier(parties, action, timeout)


def _t_queue(maxsize: int = 0) -> Any:
    made = _races().Queue(maxsize)
    made._feeder = False  # queue.Queue has no feeder thread: empty() is exact
    made._private = process_threads.ACTIVE  # in a task process: its items stay there
    return made


def _t_simple() -> Any:
    made = _races().SimpleQueue()
    made._private = process_threads.ACTIVE
    return made


_THREAD_FACTORIES: List[Tuple[Any, str, Callable[..., Any]]] = [
    (threading, "Lock", lambda: _races().Lock()),
    (threading, "RLock", lambda: _races().RLock()),
    (threading, "Semaphore", _t_semaphore),
    (threading, "BoundedSemaphore", _t_bounded),
    (threading, "Event", lambda: _races().Event()),
    (threading, "Condition", _t_condition),
    (threading, "Barrier", _t_barrier),
    (_queue_mod, "Queue", _t_queue),
    (_queue_mod, "SimpleQueue", _t_simple),
]


# -- multiprocessing.Process --------------------------------------------------------

_BP = _mp_process.BaseProcess
_real_bp: Dict[str, Any] = {
    name: _BP.__dict__[name]
    for name in ("__init__", "start", "join", "is_alive", "terminate", "kill", "exitcode", "ident", "pid", "daemon", "__repr__")
}


def _child(obj: Any) -> Any:
    return obj.__dict__.get("_races_child")


def _bp_init(self: Any, group: Any = None, target: Any = None, name: Any = None, args: tuple = (),
             kwargs: Any = {}, *, daemon: Any = None) -> None:  # noqa: B006 - CPython's signature
    _real_bp["__init__"](self, group, target, name, args, kwargs, daemon=daemon)
    agent = current()
    if agent is not None and name is None:
        from ..primitives.process import auto_name

        self._name = auto_name(agent.name, "Process")  # CPython's counter is per process


def _bp_start(self: Any) -> None:
    handle = _child(self)
    if handle is None:
        if not _controlled_here(tasks_only=True):
            return _real_bp["start"](self)
        self._check_closed()
        from ..primitives.process import ChildHandle, call_of

        handle = ChildHandle("process", call_of(self, "process"), self.name, self.daemon)
        self._races_child = handle
    handle.start()
    return None


def _bp_join(self: Any, timeout: Any = None) -> None:
    handle = _child(self)
    if handle is None:
        return _real_bp["join"](self, timeout)
    handle.join(timeout)
    return None


def _bp_is_alive(self: Any) -> bool:
    handle = _child(self)
    return _real_bp["is_alive"](self) if handle is None else handle.is_alive()


def _bp_terminate(self: Any) -> None:
    handle = _child(self)
    if handle is None:
        return _real_bp["terminate"](self)
    handle.terminate()
    return None


def _bp_kill(self: Any) -> None:
    handle = _child(self)
    if handle is None:
        return _real_bp["kill"](self)
    handle.kill()
    return None


def _bp_exitcode(self: Any) -> Any:
    handle = _child(self)
    return _real_bp["exitcode"].fget(self) if handle is None else handle.exitcode


def _bp_ident(self: Any) -> Any:
    handle = _child(self)
    return _real_bp["ident"].fget(self) if handle is None else handle.pid


def _bp_set_daemon(self: Any, daemonic: Any) -> None:
    if _child(self) is not None:
        raise AssertionError("process has already started")
    _real_bp["daemon"].fset(self, daemonic)


def _bp_repr(self: Any) -> str:
    handle = _child(self)
    if handle is None:
        return _real_bp["__repr__"](self)
    daemon = " daemon" if handle.daemon else ""
    return f"<{type(self).__name__} name={self._name!r} races task {handle.task!r}{daemon}>"


_BP_PATCH: Dict[str, Any] = {
    "__repr__": _bp_repr,
    "daemon": property(_real_bp["daemon"].fget, _bp_set_daemon),
    "__init__": _bp_init,
    "start": _bp_start,
    "join": _bp_join,
    "is_alive": _bp_is_alive,
    "terminate": _bp_terminate,
    "kill": _bp_kill,
    "exitcode": property(_bp_exitcode),
    "ident": property(_bp_ident),
    "pid": property(_bp_ident),
}


# -- threading.Thread ------------------------------------------------------------------

_TH = threading.Thread
_real_th: Dict[str, Any] = {
    name: _TH.__dict__[name] for name in ("__init__", "start", "join", "is_alive", "daemon")
}


def _th_init(self: Any, group: Any = None, target: Any = None, name: Any = None, args: tuple = (),
             kwargs: Any = None, *, daemon: Any = None) -> None:
    agent = current()
    user = agent is not None and not agent.busy and _is_user_file(sys._getframe(1).f_code.co_filename)
    if user and daemon is None:
        # CPython inherits the creating thread's flag: the task's, not that of
        # the harness thread it runs on
        daemon = agent.daemon  # type: ignore[union-attr]
    _real_th["__init__"](self, group, target, name, args, kwargs, daemon=daemon)
    if user and name is None:
        from ..primitives.process import auto_name

        label = auto_name(agent.name, "Thread")  # type: ignore[union-attr]
        if target is not None:
            label += f" ({getattr(target, '__name__', 'target')})"
        self._name = label


def _th_start(self: Any) -> None:
    handle = _child(self)
    if handle is None:
        if not _controlled_here(tasks_only=True):
            return _real_th["start"](self)
        if not self._initialized:
            raise RuntimeError("thread.__init__() not called")
        if isinstance(self, threading.Timer) and not self.finished.is_set():
            self.finished = _races().Event()  # its wait(interval) runs on virtual time
        from ..primitives.process import ChildHandle, call_of

        handle = ChildHandle("thread", call_of(self, "thread"), self.name, self.daemon)
        self._races_child = handle
    handle.start()
    return None


def _th_join(self: Any, timeout: Any = None) -> None:
    handle = _child(self)
    if handle is None:
        return _real_th["join"](self, timeout)
    handle.join(timeout)
    return None


def _th_is_alive(self: Any) -> bool:
    handle = _child(self)
    return _real_th["is_alive"](self) if handle is None else handle.is_alive()


def _th_set_daemon(self: Any, daemonic: Any) -> None:
    if _child(self) is not None:
        raise RuntimeError("cannot set daemon status of active thread")
    _real_th["daemon"].fset(self, daemonic)


_TH_PATCH: Dict[str, Any] = {
    "daemon": property(_real_th["daemon"].fget, _th_set_daemon),
    "__init__": _th_init, "start": _th_start, "join": _th_join, "is_alive": _th_is_alive}


# -- Managers started from tasks ------------------------------------------------------

_task_managers: Dict[str, List[Any]] = {}
_prev_manager_start: Any = None


def _manager_start(self: Any, *args: Any, **kwargs: Any) -> Any:
    agent = current()
    if agent is None:
        return _prev_manager_start(self, *args, **kwargs)
    saved = agent.busy
    agent.busy = True  # its Process, Pipe and waits are the Manager's own business
    try:
        result = patches._real_manager_start(self, *args, **kwargs)
    finally:
        agent.busy = saved
    _task_managers.setdefault(agent.name, []).append(self)
    return result


def shutdown_task_managers(task: Optional[str] = None) -> List[str]:
    """Shut down the Managers ``task`` started (every task's when None), as the
    finalizers of its process do at exit.  Returns a phrase per Manager."""
    if not _task_managers:
        return []
    names = [task] if task is not None else list(_task_managers)
    done = []
    for name in names:
        for manager in _task_managers.pop(name, []):
            process = getattr(manager, "_process", None)
            pid = getattr(process, "pid", None)
            try:
                manager.shutdown()
            except Exception:  # noqa: BLE001 - already gone is fine
                pass
            done.append(f"the Manager {name} started (pid {pid})")
    return done


def task_ended(record: Any, notes: List[str]) -> None:
    """Controller hook (thread backend): a task's end shuts down its Managers,
    unless it is a thread (threads do not run their process's finalizers)."""
    if getattr(record, "kind", "task") == "thread":
        return
    for phrase in shutdown_task_managers(record.name):
        notes.append(f"{record.name} ended: {phrase} was shut down, as at the exit of its process")


# -- install / uninstall --------------------------------------------------------------

_lock = threading.Lock()
_depth = {"mp": 0, "threads": 0}
_saved: Dict[Tuple[int, str], Any] = {}
_targets: Dict[int, Any] = {}


def _swap_in(owner: Any, name: str, value: Any) -> None:
    key = (id(owner), name)
    if key not in _saved:
        _saved[key] = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
        _targets[id(owner)] = owner
    setattr(owner, name, value)


def _swap_out(owner: Any, name: str) -> None:
    key = (id(owner), name)
    if key in _saved:
        setattr(owner, name, _saved.pop(key))


# The factories wrap what the attribute holds when a run starts (normally the
# original): made once per original and reused, since every run (thousands in
# an exploration) installs them again.
_factory_cache: Dict[Tuple[int, str], Tuple[Any, Any]] = {}


def _factory_for(module: Any, name: str, build: Callable[..., Any]) -> Any:
    real = getattr(module, name)
    key = (id(module), name)
    hit = _factory_cache.get(key)
    if hit is None or hit[0] is not real:
        hit = _factory_cache[key] = (real, _factory(real, build))
    return hit[1]


def _swap_all(pairs: List[Tuple[Any, str, Any]]) -> None:
    """:func:`_swap_in` for each ``(owner, name, value)``, in one loop (every run does it)."""
    saved = _saved
    for owner, name, value in pairs:
        key = (id(owner), name)
        if key not in saved:
            saved[key] = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
            _targets[key[0]] = owner
        setattr(owner, name, value)


def _unswap_all(pairs: List[Tuple[Any, str]]) -> None:
    saved = _saved
    for owner, name in pairs:
        original = saved.pop((id(owner), name), saved)
        if original is not saved:
            setattr(owner, name, original)


_MP_NAMES: List[Tuple[Any, str]] = (
    [(module, name) for module, name, _ in _MP_FACTORIES] + [(_BP, name) for name in _BP_PATCH]
    + [(managers.BaseManager, "start")]
)
_TH_NAMES: List[Tuple[Any, str]] = (
    [(module, name) for module, name, _ in _THREAD_FACTORIES] + [(_TH, name) for name in _TH_PATCH]
)


def _apply_mp() -> None:
    global _prev_manager_start
    pairs = [(module, name, _factory_for(module, name, build)) for module, name, build in _MP_FACTORIES]
    pairs += [(_BP, name, value) for name, value in _BP_PATCH.items()]
    _swap_all(pairs)
    _prev_manager_start = managers.BaseManager.start
    _swap_in(managers.BaseManager, "start", _manager_start)


def _restore_mp() -> None:
    _unswap_all(_MP_NAMES)


def _apply_threads() -> None:
    pairs = [(module, name, _factory_for(module, name, build)) for module, name, build in _THREAD_FACTORIES]
    pairs += [(_TH, name, value) for name, value in _TH_PATCH.items()]
    _swap_all(pairs)


def _restore_threads() -> None:
    _unswap_all(_TH_NAMES)


class suspended:
    """Context manager: the real module attributes for a while.

    A Manager's server process is pickled with its registry, which names
    ``queue.Queue``, ``threading.Event``...: pickle looks classes up by name and
    refuses a factory in their place, so a Manager starts unpatched.
    """

    def __enter__(self) -> "suspended":
        with _lock:
            self.swapped = []
            for (oid, name), original in list(_saved.items()):
                owner = _targets[oid]
                if isinstance(owner, type):
                    continue  # methods are not looked up by pickle
                self.swapped.append((owner, name, getattr(owner, name)))
                setattr(owner, name, original)
        return self

    def __exit__(self, *exc: Any) -> None:
        with _lock:
            for owner, name, patched in self.swapped:
                if (id(owner), name) in _saved:  # still installed
                    setattr(owner, name, patched)


def install(threads: bool) -> None:
    """Enter a patch-mode run in this process (reference counted)."""
    with _lock:
        _depth["mp"] += 1
        if _depth["mp"] == 1:
            _apply_mp()
        if threads:
            _depth["threads"] += 1
            if _depth["threads"] == 1:
                _apply_threads()


def uninstall(threads: bool) -> None:
    with _lock:
        if threads:
            _depth["threads"] -= 1
            if _depth["threads"] == 0:
                _restore_threads()
        _depth["mp"] -= 1
        if _depth["mp"] == 0:
            _restore_mp()


def install_for_process() -> None:
    """Inside a task process: patch multiprocessing and threading for good
    (the threads a task starts are tasks in that process, see
    :mod:`races._core.process_threads`)."""
    install(threads=True)


def uninstall_for_process() -> None:
    """Undo :func:`install_for_process` (a template's child in a run without patch mode)."""
    uninstall(threads=True)


def active() -> bool:
    return _depth["mp"] > 0
