"""The task side of the handoff: how code running inside a task tells the
controller its next step and waits to be told to go.

A task thread has an :class:`Agent` in a thread-local; a task process has one
for its main thread.  Code outside any task sees ``current() is None`` and every
controlled operation falls back to doing nothing special, so production code
may keep its ``races.point`` calls.

Replies from the controller are tuples: ``("ok", value)``, ``("raise", exc)``
or ``("abort",)``.
"""
from __future__ import annotations

import threading
from sys import _getframe
from typing import Any, Optional

from .errors import TaskAborted
from .step import Step, _getcwd, _locations, _user_files, caller_location

_tls = threading.local()
_new_step = tuple.__new__  # Step(...) without its Python-level __new__ (every step makes one)


class Channel:
    """One task's line to the controller: send a step, block until the reply."""

    def exchange(self, message: tuple) -> tuple:  # pragma: no cover - interface
        raise NotImplementedError


class Agent:
    """What a controlled task holds: its name and its channel to the controller."""

    __slots__ = ("name", "channel", "aborted", "busy", "daemon", "__weakref__")

    def __init__(self, name: str, channel: Channel, daemon: bool = False) -> None:
        self.name = name
        self.channel = channel
        self.aborted = False
        # a daemon thread task: the threads it starts are daemons by default (as in CPython)
        self.daemon = daemon
        # True while the harness itself is inside an operation (for example a
        # Manager call it already announced), so nested calls are not steps.
        self.busy = False

    def step(
        self,
        kind: str,
        name: str,
        obj: Optional[str] = None,
        label: Optional[str] = None,
        args: tuple = (),
        timeout: Optional[float] = None,
        depth: int = 2,
    ) -> Any:
        """Announce a step, wait for the controller, return its reply value."""
        if self.aborted:
            raise TaskAborted(f"task {self.name!r} was stopped by the controller")
        # caller_location(depth + 1), for the common case inlined: a user frame
        # whose location is known already (every step asks)
        frame = _getframe(depth)
        code = frame.f_code
        location = _locations.get((_getcwd(), code, frame.f_lasti)) if _user_files.get(code.co_filename) else None
        if location is None:
            location = caller_location(depth + 1)
        step = _new_step(Step, (kind, name, obj, label, location, args, timeout))
        reply = self.channel.exchange(("step", step))
        tag = reply[0]
        if tag == "ok":
            return reply[1]
        if tag == "raise":
            raise reply[1]
        self.aborted = True
        raise TaskAborted(f"task {self.name!r} was stopped by the controller")


_process_agent: Optional[Agent] = None
_process_thread: Optional[int] = None


def current() -> Optional[Agent]:
    """The agent of the calling thread, or None outside the harness."""
    agent = getattr(_tls, "agent", None)
    if agent is not None:
        return agent
    if _process_agent is not None and threading.get_ident() == _process_thread:
        return _process_agent
    return None


def bind_thread(agent: Optional[Agent]) -> None:
    """Make ``agent`` the calling thread's agent (None to unbind)."""
    _tls.agent = agent


def bind_process(agent: Agent) -> None:
    """Make ``agent`` the agent of this process's main thread (task processes only)."""
    global _process_agent, _process_thread
    _process_agent = agent
    _process_thread = threading.get_ident()


def current_task_name() -> Optional[str]:
    agent = current()
    return agent.name if agent is not None else None
