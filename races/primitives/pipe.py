"""``races.Pipe``: a pair of connections whose messages live in the model.

``send`` carries the object in the step's ``args``; ``recv``'s reply carries
it back, so it crosses processes through the controller.  ``recv`` (and
``poll(None)``) is enabled once a message waits at that end or the other end
is closed; then ``recv`` raises ``EOFError``.  ``close`` from any task closes
that end for everyone (the model does not count per-process handle copies as
the OS does).  Outside the harness the pair is a real
``multiprocessing.Pipe``.
"""
from __future__ import annotations

import collections
import multiprocessing
from typing import Any

from .._core.agent import current
from .._core.ids import new_id
from .._core.model import OK, Model, register
from .._core.step import Step


class _Fallback:
    """The real pipe behind a pair used outside the harness (made on first use)."""

    def __init__(self, duplex: bool) -> None:
        self.duplex = duplex
        self.ends: tuple | None = None

    def end(self, index: int) -> Any:
        if self.ends is None:
            self.ends = multiprocessing.Pipe(self.duplex)
        return self.ends[index]


class Connection:
    """One end of a :func:`Pipe`."""

    def __init__(self, pipe: str, label: str, end: int, readable: bool, writable: bool, fallback: Any) -> None:
        self._pipe = pipe
        self._label = f"{label}[{end}]"
        self._end = end
        self._readable = readable
        self._writable = writable
        self._closed = False
        self._shared = fallback

    def _real(self) -> Any:
        if self._shared is None:
            raise OSError("handle is closed")  # an unpickled copy used outside the harness
        return self._shared.end(self._end)

    def _step(self, name: str, args: tuple = (), timeout: float | None = None) -> Any:
        agent = current()
        assert agent is not None
        return agent.step("pipe", name, self._pipe, self._label, (self._end, *args), timeout, depth=3)

    def _check(self, readable: bool = False, writable: bool = False) -> None:
        if self._closed:
            raise OSError("handle is closed")
        if readable and not self._readable:
            raise OSError("connection is write-only")
        if writable and not self._writable:
            raise OSError("connection is read-only")

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def readable(self) -> bool:
        return self._readable

    @property
    def writable(self) -> bool:
        return self._writable

    def send(self, obj: Any) -> None:
        if current() is None:
            self._real().send(obj)
            return
        self._check(writable=True)
        self._step("send", (obj,))

    def send_bytes(self, buf: Any, offset: int = 0, size: int | None = None) -> None:
        if current() is None:
            self._real().send_bytes(buf, offset, size)
            return
        self._check(writable=True)
        data = bytes(memoryview(buf).cast("B"))
        if offset < 0:
            raise ValueError("offset is negative")
        if len(data) < offset:
            raise ValueError("buffer length < offset")
        if size is None:
            size = len(data) - offset
        if size < 0:
            raise ValueError("size is negative")
        if offset + size > len(data):
            raise ValueError("buffer length < offset + size")
        self._step("send", (data[offset:offset + size],))

    def recv(self) -> Any:
        if current() is None:
            return self._real().recv()
        self._check(readable=True)
        return self._step("recv")

    def recv_bytes(self, maxlength: int | None = None) -> bytes:
        if current() is None:
            return self._real().recv_bytes(maxlength)
        self._check(readable=True)
        if maxlength is not None and maxlength < 0:
            raise ValueError("negative maxlength")
        return self._step("recv")

    def poll(self, timeout: float | None = 0.0) -> bool:
        if current() is None:
            return self._real().poll(timeout)
        self._check(readable=True)
        bound = None if timeout is None else max(float(timeout), 0.0)
        return self._step("poll", (), bound)

    def close(self) -> None:
        if current() is None:
            if self._shared is not None:
                self._real().close()
            self._closed = True
            return
        if not self._closed:
            self._closed = True
            self._step("close")

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_shared"] = None
        return state

    def __repr__(self) -> str:
        return f"<races.Connection {self._label}>"


def Pipe(duplex: bool = True, name: str | None = None) -> tuple[Connection, Connection]:
    """``(conn1, conn2)``; with ``duplex=False`` conn1 only receives and conn2 only sends."""
    pipe = new_id("Pipe")
    label = name or pipe.rsplit("/", 1)[-1]
    fallback = _Fallback(duplex)
    first = Connection(pipe, label, 0, True, duplex, fallback)
    second = Connection(pipe, label, 1, duplex, True, fallback)
    return first, second


@register("pipe")
class PipeModel(Model):
    """Messages waiting at each end; which ends are closed."""

    def __init__(self, obj: str, label: str, run: Any) -> None:
        super().__init__(obj, label.split("[")[0], run)
        self.waiting: dict[int, collections.deque] = {0: collections.deque(), 1: collections.deque()}
        self.closed = {0: False, 1: False}
        self.closed_at: dict[int, str] = {}

    def _can_read(self, end: int) -> bool:
        return bool(self.waiting[end]) or self.closed[1 - end]

    def enabled(self, task: str, step: Step) -> bool:
        if step.name in ("recv", "poll"):
            return self._can_read(step.args[0])
        return True

    def apply(self, task: str, step: Step) -> tuple:
        end = step.args[0]
        if step.name == "send":
            if self.closed[1 - end]:
                return ("raise", BrokenPipeError(32, "Broken pipe"))
            self.waiting[1 - end].append(step.args[1])
            return OK
        if step.name == "recv":
            if self.waiting[end]:
                return ("ok", self.waiting[end].popleft())
            return ("raise", EOFError())
        if step.name == "poll":
            return ("ok", True)
        if step.name == "close":
            self.closed[end] = True
            self.closed_at[end] = f"{task} at {step.location}"
        return OK

    def blocked_reason(self, task: str, step: Step) -> str:
        end = step.args[0]
        return (
            f"waits forever in Connection.{step.name} on {self.label} end {end} at {step.location}: "
            f"nothing was sent to this end, the other end is open and no task will send on it"
        )

    def task_ended(self, task: str) -> None:
        pass
