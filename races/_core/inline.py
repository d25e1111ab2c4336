"""Baton passing: thread tasks run the controller's decisions themselves.

With a separate controller thread every step costs two thread switches
(task → controller → task), even when the same task simply goes on, which is
most steps.  In inline mode the task thread that reaches a step takes the
controller's turn itself, under one mutex: it records its step, decides who
goes next, and either returns at once (it goes on: no switch at all) or grants
the chosen task and blocks (one switch).  The controller's own thread only
waits for the end of the run and watches the wall clock: if no step arrives
within ``timeout`` seconds, the running task is stuck in uncontrolled code.

Once the run has ended (finished, failed, stuck) every later message falls
back to the ordinary handoff, so shutdown and abort work as in the classic
loop.  Only the thread backend uses this; processes always talk to the
controller over their pipes.
"""
from __future__ import annotations

import time
from _thread import allocate_lock
from typing import TYPE_CHECKING, Any, Optional

from .controller import _Stop
from .schedule import Infeasible

if TYPE_CHECKING:  # pragma: no cover
    from .controller import Controller, TaskRecord

FALLBACK = object()  # the run is over: use the ordinary handoff
WAIT = object()  # another task was granted: block until granted again
_STOPS = (_Stop, Infeasible)
_monotonic = time.monotonic


class InlineDriver:
    def __init__(self, controller: "Controller") -> None:
        self.controller = controller
        self.mutex = allocate_lock()
        self.finished = allocate_lock()
        self.finished.acquire()
        self.ended = False
        self.stop: Optional[BaseException] = None
        self.last_step = time.monotonic()

    # -- called by task threads -----------------------------------------------
    def on_message(self, record: "TaskRecord", message: tuple) -> Any:
        """Take ``record``'s report and the controller's turn.  Returns the reply
        when ``record`` goes on, WAIT when another task was granted, FALLBACK
        when the run is over."""
        with self.mutex:
            if self.ended:
                return FALLBACK
            self.last_step = _monotonic()
            c = self.controller
            try:
                if message[0] == "step":
                    c._on_step(record, message[1])
                else:
                    c._on_event(record, message)
                pick = c._decide()
                if pick is None:
                    self._end(None)
                    return WAIT
                reply = c._take(pick)
                if pick is record:
                    return reply
                pick.handle.grant(reply)
                return WAIT
            except _STOPS as stop:
                self._end(stop)
                return WAIT
            except BaseException as exc:  # noqa: BLE001 - ReplayError and harness bugs go to the caller
                self._end(exc)
                return WAIT

    def _end(self, stop: Optional[BaseException]) -> None:
        self.ended = True
        self.stop = stop
        self.finished.release()

    # -- called by the controller's thread --------------------------------------
    def drive(self) -> None:
        c = self.controller
        for t in c.tasks:
            t.handle.driver = self  # type: ignore[attr-defined]  # thread handles only
            t.handle.record = t  # type: ignore[attr-defined]
        first = c._decide()
        if first is None:
            return
        first.handle.grant(c._take(first))
        while True:
            remaining = self.last_step + c.timeout - time.monotonic()
            if self.finished.acquire(True, max(remaining, 0.0)):
                break
            with self.mutex:
                if self.ended:
                    continue  # finished is being released
                if time.monotonic() - self.last_step < c.timeout:
                    continue
                self.ended = True  # the running task is stuck: end the run here
                stuck = c.current
            if stuck is not None:
                c._on_event(stuck, ("timeout", None))  # raises _Stop with the stack
            break
        if self.stop is not None:
            raise self.stop
