"""Threads of a task process, as the controller sees them.

A thread started inside a task process is a task of its own (kind
``thread``) that lives in its starter's process (see
:mod:`races._core.process_threads` for the task side).  Its handle owns a
socketpair: one end stays here, the other is sent to the starter over the
starter's own line, attached (``SCM_RIGHTS``) to a ``("spawn", key, name)``
message, and the starter's process runs the thread on it.

The process is the root task's (:class:`~races._core.process_transport.ProcessTask`):
a wait watches the thread's line and the process's sentinel together, so a
crash of the process (``os._exit`` from any thread, a signal) ends every one
of its threads' waits at once; a timeout dumps the process's stacks (every
thread) and stopping the root kills the process.  A thread's handle only
closes its line: reaping is the root's.
"""
from __future__ import annotations

import os
import select
import socket
import time
from typing import Any, Optional

from .controller import TaskHandle
from .wire import OK_NONE, Wire, dumps


def _send_with_fd(fd: int, data: bytes, passed: int) -> None:
    """``data`` on the socket ``fd``, with descriptor ``passed`` attached."""
    sock = socket.socket(fileno=fd)
    try:
        sent = socket.send_fds(sock, [data], [passed])
    finally:
        sock.detach()
    while sent < len(data):
        sent += os.write(fd, memoryview(data)[sent:])


class ProcessThreadTask(TaskHandle):
    """A thread of a task process: its own line, its root's process."""

    def __init__(self, name: str, target: Any, root: Any, starter: Any) -> None:
        self.name = name
        self.target = target  # a process_threads.ThreadRef
        self.root = root  # the ProcessTask whose process runs it
        self.starter = starter  # the handle whose line carries its descriptor
        self.sock: Optional[socket.socket] = None
        self.wire: Optional[Wire] = None
        self._poller: Any = None
        self._stopped = False
        self.ended = False

    @property
    def proc(self) -> Any:
        return self.root.proc

    def line(self) -> Wire:
        """The wire this task's own children's descriptors travel on."""
        assert self.wire is not None
        return self.wire

    def spawn_thread(self, name: str, target: Any) -> "ProcessThreadTask":
        return ProcessThreadTask(name, target, self.root, self)

    def start(self) -> None:
        ours, theirs = socket.socketpair()
        try:
            data = dumps(("spawn", self.target.key, self.name))
            _send_with_fd(self.starter.line().fd, data, theirs.fileno())
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self.sock = ours
        self.wire = Wire(ours.fileno())
        self._poller = select.poll()
        self._poller.register(self.wire.fd, select.POLLIN)
        sentinel = self.proc.sentinel
        if sentinel is not None:
            self._poller.register(sentinel, select.POLLIN)
        self.root.threads.append(self)

    def grant(self, reply: tuple) -> None:
        if self.wire is None:
            return
        try:
            self.wire.send_bytes(OK_NONE if reply == ("ok", None) else dumps(reply))
        except OSError:
            pass  # its process died: wait_event sees the crash

    def wait_event(self, timeout: float) -> tuple:
        wire = self.wire
        if wire is None or self.root._stopped:
            return ("crash", None)
        if not wire._buf or not wire.buffered():
            ready = self._poller.poll(int(timeout * 1000) if timeout > 0 else 0)
            if not ready:
                return ("timeout", None)
            if all(fd != wire.fd for fd, _ in ready) and not _readable(wire.fd):
                return ("crash", self.proc.exit_code(5.0))  # its process ended
        try:
            message = wire.recv()
        except (EOFError, OSError):
            return ("crash", self.proc.exit_code(5.0))
        if message[0] != "step":
            self.ended = True
        return message  # type: ignore[no-any-return]

    def dump_stack(self) -> str:
        text: str = self.root.dump_stack()
        return f"(task {self.name!r} is thread 'races:{self.name}' of that process)\n{text}"

    def stop(self, waiting: bool, grace: float) -> Optional[str]:
        if self._stopped:
            return None
        self._stopped = True
        try:
            if waiting and not self.ended and not self.root._stopped and self.proc.alive():
                self.grant(("abort",))
                # bounded: the process may exit (its main thread ended) instead of answering
                deadline = time.monotonic() + grace
                while time.monotonic() < deadline:
                    event = self.wait_event(max(0.0, deadline - time.monotonic()))
                    if event[0] != "step":
                        break
                    self.grant(("abort",))
        finally:
            if self.sock is not None:
                self.sock.close()
        return None


def _readable(fd: int) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))
