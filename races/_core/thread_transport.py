"""Tasks as threads of this process: the in-process transport.

The handoff is raw locks: the worker's ``go`` lock for the controller's reply
and the task's ``_ready`` for its report (used only when the run is not
inline, see :mod:`races._core.inline`), so a switch costs a few microseconds.
Raw ``_thread`` locks and the real ``threading.Thread`` are captured at import
so that patch mode can never turn the harness's own machinery into steps.

Worker threads.  Starting and joining a thread costs ~100 µs here, more than a
whole small run, so task threads are kept between runs in a small pool of
parked workers (daemon threads named ``races-pool (idle)``).  A worker takes
one task at a time: while it runs the task its name is ``races:<task>``, and
when the task has ended it is given back a fresh thread's state before it
parks again: its thread-locals are dropped (as at a thread's exit; only its
proxies' connection to a warm ``races.manager()`` server is kept), the task
ran in an empty ``contextvars`` context, and the trace and profile hooks of
``threading.settrace``/``setprofile`` are set again for each task.  From the
user's side a run still leaves no thread behind: idle workers are services
(:func:`idle_threads`, ignored by the leak checks) and :func:`shutdown_pool`
(``races.shutdown()``) ends them.  On Python 3.13+ thread-locals no longer
live in the thread-state dict and cannot be dropped, so there every task gets
a fresh thread again (same code, one task per worker).

A task's first step (``start``) is the same for every task, so it is reported
for the task without running its thread: the worker is woken only when the
task is first granted, and a task that never ran (a run that failed before
its turn) gives its worker back without a switch.
"""
from __future__ import annotations

import ctypes
import os
import sys
import threading
import time
import traceback
from _thread import allocate_lock
from contextvars import Context as _Context
from typing import Any, Callable, List, Optional

from . import affinity
from .agent import Agent, Channel, bind_thread
from .controller import TaskHandle
from .errors import TaskAborted
from .inline import FALLBACK, WAIT
from .step import Step, short_path


class _RealThread(threading.Thread):
    """The harness's own threads: the real methods, captured at import, so that
    patch mode (which patches ``threading.Thread``) never touches them."""

    __init__ = threading.Thread.__init__  # type: ignore[assignment]
    start = threading.Thread.start  # type: ignore[assignment]
    join = threading.Thread.join  # type: ignore[assignment]
    is_alive = threading.Thread.is_alive  # type: ignore[assignment]
    run = threading.Thread.run  # type: ignore[assignment]


def describe_exception(exc: BaseException) -> tuple:
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return (type(exc).__name__, str(exc), tb)


def target_location(target: Callable) -> str:
    target = getattr(target, "func", target)  # functools.partial
    code = getattr(target, "__code__", None)
    if code is None:
        code = getattr(getattr(target, "__call__", None), "__code__", None)
    if code is None:
        return "?"
    return f"{short_path(code.co_filename)}:{code.co_firstlineno}"


def _start_step(target: Callable) -> Step:
    """A task's first step: ``start``, located at its target."""
    return _new_tuple(Step, ("start", "start", None, None, target_location(target), (), None))


_new_tuple = tuple.__new__


# -- the pool of worker threads ---------------------------------------------------

# threading.local lives in the thread-state dict up to 3.12: dropping that dict
# is what a thread's exit does, so a reused worker looks fresh
_POOL = sys.version_info < (3, 13) and not os.environ.get("RACES_NO_THREAD_POOL")
_IDLE_NAME = "races-pool (idle)"
_MAX_IDLE = 64

if _POOL:
    # a borrowed reference: take the address (a py_object restype would be taken
    # as a new reference and released once too often)
    _get_dict = ctypes.pythonapi.PyThreadState_GetDict
    _get_dict.restype = ctypes.c_void_p
    _get_dict.argtypes = []


def _thread_state_dict() -> dict:
    """The calling thread's state dict (where ``threading.local`` keeps its values)."""
    return ctypes.cast(_get_dict(), ctypes.py_object).value  # type: ignore[no-any-return]

_pool_lock = allocate_lock()
_idle: List["_Worker"] = []


class _Worker:
    """One task thread; parked on ``go`` between tasks."""

    __slots__ = ("thread", "go", "job", "cpu", "retired", "state_dict")

    def __init__(self, cpu: Optional[int], name: str) -> None:
        self.go = allocate_lock()
        self.go.acquire()
        self.job: Optional[ThreadTask] = None
        self.cpu = cpu  # threads inherit their creator's CPU mask: the run's
        self.retired = not _POOL  # True: ends after its task
        self.state_dict: Optional[dict] = None  # its thread-state dict (the same object for its life)
        self.thread = _RealThread(target=_serve, args=(self,), name=name, daemon=True)
        self.thread.start()


def _take(name: str, cpu: Optional[int]) -> _Worker:
    if _POOL:
        with _pool_lock:
            if _idle:
                worker = _idle.pop()
                worker.thread.name = name
                return worker
    return _Worker(cpu, name)


def _serve(worker: _Worker) -> None:
    if worker.cpu is not None:
        affinity.batch()  # a harness thread for good (see affinity)
    if _POOL:
        worker.state_dict = _thread_state_dict()
    try:
        while True:
            worker.go.acquire()  # parked until the first grant of a task, or shutdown
            job = worker.job
            if job is None:
                return
            kept = False
            try:
                if job.cpu != worker.cpu:
                    affinity.pin_thread(job.cpu)
                    if worker.cpu is None:
                        affinity.batch()
                    worker.cpu = job.cpu
                job._run()
                kept = _park(worker)
            finally:
                job._leaving = not kept
                job._finished.release()
            if not kept:
                return
    except BaseException:  # noqa: BLE001, S110 - a late asynchronous stop (TaskAborted): the thread goes
        pass


def _park(worker: _Worker) -> bool:
    """Give the worker a fresh thread's state and put it back in the pool;
    False when it must end instead (retired, or the pool is full)."""
    if worker.retired:
        return False
    if sys.gettrace() is not None:
        sys.settrace(None)
    if sys.getprofile() is not None:
        sys.setprofile(None)
    kept = _warm_manager_connections()
    worker.state_dict.clear()  # type: ignore[union-attr]  # its threading.local values, as at a thread's exit
    for local, connection in kept:
        local.connection = connection
    worker.thread.name = _IDLE_NAME
    worker.job = None  # the finished run is not kept alive by its workers
    with _pool_lock:
        if worker.retired or len(_idle) >= _MAX_IDLE:
            return False
        _idle.append(worker)
    return True


def _warm_manager_connections() -> List[Any]:
    """The calling worker's connections to the warm Manager servers
    (``races.manager()``): (the proxies' thread-local, the connection).

    A proxy keeps one connection per thread and server, and a new thread
    opens a new one (~0.3 ms, an authenticated handshake): a parked worker
    keeps those to the servers that live as long as the process, as a
    long-lived thread of the user's would.  Nothing else of its locals is kept."""
    from . import shared_manager

    addresses = shared_manager.addresses()
    if not addresses:
        return []
    from multiprocessing.managers import BaseProxy

    kept = []
    for address in addresses:
        entry = BaseProxy._address_to_local.get(address)  # type: ignore[attr-defined]
        connection = getattr(entry[0], "connection", None) if entry else None
        if connection is not None and not connection.closed:
            kept.append((entry[0], connection))  # type: ignore[index]
    return kept


def idle_threads() -> List[threading.Thread]:
    """The parked workers (services, not tasks: leak checks leave them alone)."""
    with _pool_lock:
        return [w.thread for w in _idle]


def shutdown_pool(timeout: float = 2.0) -> None:
    """End the parked workers (``races.shutdown()``)."""
    with _pool_lock:
        workers = list(_idle)
        _idle.clear()
    for worker in workers:
        worker.job = None
        worker.go.release()
    for worker in workers:
        worker.thread.join(timeout)


def _forget_pool_in_child() -> None:
    global _pool_lock
    _pool_lock = allocate_lock()
    _idle.clear()  # the workers were threads of the parent


if hasattr(os, "register_at_fork"):
    # a fork sees no parked worker (Python 3.12+ warns when a multi-threaded
    # process forks; without the pool no thread was left there): they end
    # first, and the next thread-backend run starts new ones
    os.register_at_fork(before=shutdown_pool, after_in_child=_forget_pool_in_child)


# -- one task ------------------------------------------------------------------------

class ThreadTask(TaskHandle, Channel):
    def __init__(self, name: str, target: Callable, state: Any, cpu: Optional[int] = None) -> None:
        self.name = name
        self.target = target
        self.state = state
        self.cpu = cpu
        self._go: Any = None  # the worker's lock, once started
        self._ready = allocate_lock()
        self._ready.acquire()
        self._finished = allocate_lock()  # released by the worker when the task is over
        self._finished.acquire()
        self._inbox: tuple = ("ok", None)
        self._outbox: tuple = ("step", None)
        self.worker: Optional[_Worker] = None
        self.thread: Optional[threading.Thread] = None
        self.driver: Any = None  # an InlineDriver once the run is under way
        self.record: Any = None
        self._granted = False  # the worker was woken for this task
        self._leaving = False  # the worker's thread ends after this task
        self._reaped = False

    # -- the task's side (runs in the worker thread) ------------------------
    def exchange(self, message: tuple) -> tuple:
        driver = self.driver
        if driver is not None:
            answer = driver.on_message(self.record, message)
            if answer is WAIT:
                self._go.acquire()
                return self._inbox
            if answer is not FALLBACK:
                return answer
        self._outbox = message
        self._ready.release()
        self._go.acquire()
        return self._inbox

    def _body(self) -> tuple:
        call = getattr(self.target, "target", self.target)  # (a LineTraced wraps the ChildCall)
        agent = Agent(self.name, self, bool(getattr(call, "daemon", False)))
        bind_thread(agent)
        try:
            reply = self._inbox  # the reply to its start step
            if reply[0] != "ok":
                if reply[0] == "raise":
                    raise reply[1]
                agent.aborted = True
                raise TaskAborted(f"task {self.name!r} was stopped by the controller")
            self.target(self.state)
            return ("done", None)
        except TaskAborted:
            return ("aborted", None)
        except BaseException as exc:  # noqa: BLE001 - a task's failure is data
            return ("error", describe_exception(exc))
        finally:
            bind_thread(None)

    def _run(self) -> None:
        if _POOL:  # what a new thread would start with
            if threading._trace_hook is not None:  # type: ignore[attr-defined]
                sys.settrace(threading._trace_hook)  # type: ignore[attr-defined]
            if threading._profile_hook is not None:  # type: ignore[attr-defined]
                sys.setprofile(threading._profile_hook)  # type: ignore[attr-defined]
            message = _Context().run(self._body)
        else:
            message = self._body()
        driver = self.driver
        if driver is not None and driver.on_message(self.record, message) is not FALLBACK:
            return
        self._outbox = message
        self._ready.release()

    # -- the controller's side ---------------------------------------------
    def start(self) -> None:
        worker = _take(f"races:{self.name}", self.cpu)
        self.worker = worker
        self.thread = worker.thread
        self._go = worker.go
        worker.job = self
        # its start step, reported for it: the worker runs once granted
        self._outbox = ("step", _start_step(self.target))
        self._ready.release()

    def grant(self, reply: tuple) -> None:
        self._granted = True
        self._inbox = reply
        self._go.release()

    def wait_event(self, timeout: float) -> tuple:
        if not self._ready.acquire(True, timeout):
            return ("timeout", None)
        return self._outbox

    def dump_stack(self) -> str:
        ident = self.thread.ident if self.thread is not None else None
        frame = sys._current_frames().get(ident or -1)
        if frame is None or not self._granted:
            return f"(task {self.name!r} is not running)"
        return f"Stack of task {self.name!r} (thread {ident}):\n" + "".join(traceback.format_stack(frame))

    def stop(self, waiting: bool, grace: float) -> Optional[str]:
        worker = self.worker
        if worker is None or self._reaped:
            return None
        if not self._granted:
            # it never ran: its worker is still parked; take it back as it is
            self._reaped = True
            worker.job = None
            if worker.retired:  # a one-task thread: let it end
                worker.go.release()
                worker.thread.join(grace)
            else:
                worker.thread.name = _IDLE_NAME
                with _pool_lock:
                    _idle.append(worker)
            return None
        if waiting:
            self.grant(("abort",))
        # abort every step it still announces (while unwinding, or a task that
        # was thought stuck and reached a step late), until it ends
        deadline = time.monotonic() + grace
        while not self._finished.acquire(True, 0.005):
            if time.monotonic() >= deadline:
                break
            if self._ready.acquire(False) and self._outbox[0] == "step":
                self.grant(("abort",))
        else:
            self._reap(grace)
            return None
        worker.retired = True  # it will not come back to the pool
        ident = worker.thread.ident
        if ident is not None:
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(TaskAborted))
        if self._finished.acquire(True, grace):
            self._reap(grace)
            return None
        return (
            f"task thread {self.name!r} is stuck in uncontrolled code and could not be "
            "stopped; it is left running as a daemon thread"
        )

    def _reap(self, grace: float) -> None:
        self._reaped = True
        if self._leaving and self.thread is not None:
            self.thread.join(grace)  # a thread that ends: gone before the run returns


__all__ = ["ThreadTask", "Step", "describe_exception", "idle_threads", "shutdown_pool"]
