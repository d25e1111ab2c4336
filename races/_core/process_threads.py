"""Threads inside a task process: the task process's side.

In the process backend a ``threading.Thread`` started from a task (patch
mode, or an explicit ``races.Thread``) is a task of its own that runs *in the
same process* (it shares the process's memory) with its own line to the
controller:

1. The starting thread sends its ``thread``/``start`` step.  The thread's
   target stays here (:func:`register`); the step carries a picklable
   :class:`ThreadRef` (where the target's source is, for the trace).
2. The controller makes a socketpair and sends one end back over the
   starter's line, in a ``("spawn", key, name)`` message with the descriptor
   attached (``SCM_RIGHTS``).  :meth:`WireChannel.exchange` of a start step
   reads its reply with ``recvmsg`` for that reason (every other exchange is
   a plain ``read``), starts the thread (:func:`_thread_main`, an Agent bound
   to the new line) and waits on for the start's own reply, which comes once
   the new thread stands at its first step.
3. The thread runs its target like a task process runs its task and reports
   ``done``/``error``/``aborted`` on its line.

Process semantics.  The OS threads are daemons (an aborted or failed task
process exits at once); what CPython's ``threading._shutdown`` does at exit
is :func:`join_at_exit`: when the process's main task returns, it joins the
non-daemon threads started in the process (controlled ``join`` steps,
located at ``threading._shutdown``) before it reports ``done``.  The
controller then cuts off the process's daemon threads (see
``Controller._task_ended``).
"""
from __future__ import annotations

import os
import socket
import sys
from tokenize import TokenError
from typing import Any, Dict, List, Optional

from .agent import Agent, Channel, bind_thread
from .errors import TaskAborted
from .step import Step
from .wire import _CHUNK, Wire, dumps

# True inside a task process (set by process_main): a Thread started there
# becomes a thread of this process
ACTIVE = False
EXIT_LOCATION = "threading._shutdown"

_calls: Dict[str, Any] = {}  # ChildHandle id -> its ChildCall, until its thread starts
_started: List[Any] = []  # ChildHandles of the threads started in this process


class ThreadRef:
    """What the controller gets of a thread's target: its key, its location
    and where its source is (to report the work a cut-off thread lost)."""

    __slots__ = ("key", "location", "filename", "firstlineno", "qualname")

    def __init__(self, key: str, call: Any) -> None:
        from .thread_transport import target_location

        self.key = key
        self.location = target_location(call)
        func = getattr(call, "func", call)
        code = getattr(func, "__code__", None) or getattr(getattr(func, "__call__", None), "__code__", None)
        self.filename: Optional[str] = code.co_filename if code is not None else None
        self.firstlineno = code.co_firstlineno if code is not None else 0
        self.qualname = getattr(func, "__qualname__", repr(func))

    def __getstate__(self) -> tuple:
        return (self.key, self.location, self.filename, self.firstlineno, self.qualname)

    def __setstate__(self, state: tuple) -> None:
        self.key, self.location, self.filename, self.firstlineno, self.qualname = state

    def source(self) -> Optional[tuple]:
        """``(lines, first line number, filename)`` of the target, or None."""
        import inspect
        import linecache

        if self.filename is None or self.firstlineno < 1:
            return None
        lines = linecache.getlines(self.filename)
        if not lines:
            return None
        try:
            block = inspect.getblock(lines[self.firstlineno - 1:])
        except (IndexError, SyntaxError, TokenError):
            return None
        return block, self.firstlineno, self.filename

    def __repr__(self) -> str:
        return f"<races thread {self.qualname!r}>"


def register(handle: Any) -> ThreadRef:
    """Keep ``handle``'s call here until the controller starts its thread."""
    _calls[handle._id] = handle.call
    _started.append(handle)
    return ThreadRef(handle._id, handle.call)


def forget(handle: Any) -> None:
    """The start of ``handle`` was refused: it has no thread."""
    _calls.pop(handle._id, None)
    if handle in _started:
        _started.remove(handle)


class WireChannel(Channel):
    """A task's line to the controller (a task process's main thread, or one of its threads)."""

    def __init__(self, wire: Wire) -> None:
        self.wire = wire

    def exchange(self, message: tuple) -> tuple:
        wire = self.wire
        wire.send_bytes(dumps(message))
        step = message[1] if message[0] == "step" else None
        if step is None or step.kind != "thread" or step.name != "start":
            return wire.recv()  # type: ignore[no-any-return]
        while True:  # a thread's start: its line comes first, with a descriptor
            reply = _recv_with_fds(wire)
            if reply[0] != "spawn":
                return reply  # type: ignore[no-any-return]


def _recv_with_fds(wire: Wire) -> Any:
    """The next message, taking the descriptor a ``spawn`` message carries
    (and starting that thread)."""
    if wire._buf:
        return wire.recv()
    sock = socket.socket(fileno=wire.fd)
    try:
        data, fds, _flags, _addr = socket.recv_fds(sock, _CHUNK, 1)
    finally:
        sock.detach()
    if not data:
        for fd in fds:
            os.close(fd)
        raise EOFError
    wire._buf = data
    message = wire.recv()
    if message[0] == "spawn" and fds:
        _spawn(fds[0], message[1], message[2])
    else:
        for fd in fds:
            os.close(fd)
    return message


def _spawn(fd: int, key: str, name: str) -> None:
    from .thread_transport import _RealThread

    call = _calls.pop(key, None)
    thread = _RealThread(target=_thread_main, args=(fd, name, call), name=f"races:{name}", daemon=True)
    try:
        thread.start()
    except BaseException:
        os.close(fd)  # the controller sees the thread's line close: a crash
        raise


def _thread_main(fd: int, name: str, call: Any) -> None:
    """A thread of a task process, as a task: start step, the target, its end."""
    from .thread_transport import describe_exception, target_location

    wire = Wire(fd)
    agent = Agent(name, WireChannel(wire), bool(getattr(call, "daemon", False)))
    bind_thread(agent)
    message: tuple
    try:
        start = Step("start", "start", None, None, target_location(call), (), None)
        reply = agent.channel.exchange(("step", start))
        if reply[0] != "ok":
            agent.aborted = True
            raise TaskAborted(f"task {name!r} was stopped by the controller")
        if call is None:
            raise RuntimeError(f"thread {name!r} has no target in this process")
        call(None)
        message = ("done", None)
    except TaskAborted:
        message = ("aborted", None)
    except BaseException as exc:  # noqa: BLE001 - a task's failure is data
        message = ("error", describe_exception(exc))
    finally:
        bind_thread(None)
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except Exception:  # noqa: BLE001
            pass
    try:
        wire.send_bytes(dumps(message))
    except OSError:
        pass
    finally:
        os.close(fd)


def join_at_exit(agent: Agent) -> None:
    """What ``threading._shutdown`` does when the main thread ends: wait for
    every non-daemon thread started in this process (controlled joins)."""
    joined: set = set()
    while True:
        # (a thread its joiner already saw end is not joined again)
        left = [h for h in _started if not h.daemon and h.started and h._alive and id(h) not in joined]
        if not left:
            return
        for handle in left:
            joined.add(id(handle))
            step = Step("thread", "join", handle._id, handle.name, EXIT_LOCATION, (), None)
            reply = agent.channel.exchange(("step", step))
            if reply[0] == "raise":
                raise reply[1]
            if reply[0] != "ok":
                agent.aborted = True
                raise TaskAborted(f"task {agent.name!r} was stopped by the controller")


def reset() -> None:
    """A task process starts with no threads (a fork inherits the lists)."""
    _calls.clear()
    _started.clear()
