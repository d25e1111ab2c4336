"""The bytes between the controller and a task process.

A message is a 4-byte big-endian length and a pickle, like
``multiprocessing.Connection``, but read with one ``os.read`` for the usual
small message (a ``Connection`` reads the header and the body separately)
and pickled with plain :mod:`pickle` when nothing in it needs
``ForkingPickler``'s reducers (see :func:`dumps`).  The controller's most common reply,
``("ok", None)``, is a constant.  A step round trip is thus one ``write``
and one ``read`` on each side (plus the controller's ``poll``).

Exactly one message is in flight per direction at any time (a task sends a
step and waits for the reply; the controller grants and waits for the next
step), but :meth:`Wire.recv` keeps whatever a read returned beyond the
message it returns, so it never depends on that.  (One exchange has two
replies: a thread's ``start`` is answered first by a ``spawn`` message that
carries the new thread's descriptor, read with ``recvmsg``, then by its reply;
see :mod:`races._core.process_threads`.)
"""
from __future__ import annotations

import os
import pickle
import struct
from multiprocessing.reduction import ForkingPickler
from typing import Any

from .step import Step

_HEADER = struct.Struct("!I")
_CHUNK = 1 << 16
_PLAIN = frozenset((str, int, float, bool, type(None), bytes))
_STEP = b"S"  # the fields of a Step, as a plain tuple
_ANY = b"P"  # any message, pickled


def _pickled(message: tuple) -> bytes:
    if all(type(v) in _PLAIN for v in message):
        return pickle.dumps(message, pickle.HIGHEST_PROTOCOL)
    return bytes(ForkingPickler.dumps(message))  # connections, sockets, proxies, exceptions ...


def dumps(message: tuple) -> bytes:
    """``message`` framed.  A step whose arguments are plain values travels as
    the plain tuple of its fields (pickling the named tuple itself costs more
    than the rest of the message); anything else is pickled, with
    ``ForkingPickler`` when it holds more than plain values."""
    if message[0] == "step" and len(message) == 2 and isinstance(message[1], Step):
        step = message[1]
        if all(type(v) in _PLAIN for v in step.args):
            fields = (step.kind, step.name, step.obj, step.label, step.location, step.args, step.timeout)
            data = _STEP + pickle.dumps(fields, pickle.HIGHEST_PROTOCOL)
            return _HEADER.pack(len(data)) + data
    data = _ANY + _pickled(message)
    return _HEADER.pack(len(data)) + data


def loads(body: Any) -> Any:
    if body[:1] == _STEP:
        return ("step", Step._make(pickle.loads(body[1:])))
    return pickle.loads(body[1:])


OK_NONE = dumps(("ok", None))
ABORT = dumps(("abort",))


class Wire:
    """One end of a task's socket, by file descriptor (the owner closes it)."""

    __slots__ = ("fd", "_buf")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._buf = b""

    def fileno(self) -> int:
        return self.fd

    def send(self, message: tuple) -> None:
        self.send_bytes(OK_NONE if message == ("ok", None) else dumps(message))

    def send_bytes(self, data: bytes) -> None:
        sent = os.write(self.fd, data)
        while sent < len(data):
            sent += os.write(self.fd, memoryview(data)[sent:])

    def buffered(self) -> bool:
        """True when a whole message was already read (no need to wait)."""
        buf = self._buf
        return len(buf) >= 4 and len(buf) >= 4 + _HEADER.unpack_from(buf)[0]

    def recv(self) -> Any:
        """The next message; EOFError when the other end is closed."""
        buf = self._buf
        if not buf:
            buf = os.read(self.fd, _CHUNK)
            if not buf:
                raise EOFError
            if len(buf) >= 4:
                end = 4 + _HEADER.unpack_from(buf)[0]
                if len(buf) == end:  # the usual case: exactly one message
                    return loads(memoryview(buf)[4:])
        while len(buf) < 4 or len(buf) < 4 + _HEADER.unpack_from(buf)[0]:
            need = 4 - len(buf) if len(buf) < 4 else 4 + _HEADER.unpack_from(buf)[0] - len(buf)
            chunk = os.read(self.fd, max(need, _CHUNK))
            if not chunk:
                self._buf = b""
                raise EOFError
            buf += chunk
        end = 4 + _HEADER.unpack_from(buf)[0]
        self._buf = buf[end:]
        return loads(memoryview(buf)[4:end])
