"""Tasks as threads of this process: the in-process transport.

The handoff is two raw locks per task (``_go`` for the controller's reply,
``_ready`` for the task's report), so a switch costs a few microseconds.
Raw ``_thread`` locks and the real ``threading.Thread`` are captured at import
so that patch mode can never turn the harness's own machinery into steps.
"""
from __future__ import annotations

import ctypes
import sys
import threading
import traceback
from _thread import allocate_lock
from typing import Any, Callable, Optional

from .agent import Agent, Channel, bind_thread
from .controller import TaskHandle
from .errors import TaskAborted
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


class ThreadTask(TaskHandle, Channel):
    def __init__(self, name: str, target: Callable, state: Any, prepare: Optional[Callable] = None) -> None:
        self.name = name
        self.target = target
        self.state = state
        self.prepare = prepare
        self._go = allocate_lock()
        self._go.acquire()
        self._ready = allocate_lock()
        self._ready.acquire()
        self._inbox: tuple = ("ok", None)
        self._outbox: tuple = ("step", None)
        self.thread = _RealThread(target=self._main, name=f"races:{name}", daemon=True)
        self.driver: Any = None  # an InlineDriver once the run is under way
        self.record: Any = None

    # -- the task's side (runs in the task thread) --------------------------
    def exchange(self, message: tuple) -> tuple:
        driver = self.driver
        if driver is not None:
            from .inline import FALLBACK, WAIT

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

    def _main(self) -> None:
        agent = Agent(self.name, self)
        bind_thread(agent)
        message: tuple
        try:
            if self.prepare is not None:
                self.prepare(self.name)
            agent.step("start", "start")
            self.target(self.state)
            message = ("done", None)
        except TaskAborted:
            message = ("aborted", None)
        except BaseException as exc:  # noqa: BLE001 - a task's failure is data
            message = ("error", describe_exception(exc))
        finally:
            bind_thread(None)
        driver = self.driver
        if driver is not None:
            from .inline import FALLBACK

            if driver.on_message(self.record, message) is not FALLBACK:
                return
        self._outbox = message
        self._ready.release()

    # -- the controller's side ---------------------------------------------
    def start(self) -> None:
        self.thread.start()

    def grant(self, reply: tuple) -> None:
        self._inbox = reply
        self._go.release()

    def wait_event(self, timeout: float) -> tuple:
        if not self._ready.acquire(True, timeout):
            return ("timeout", None)
        message = self._outbox
        if message[0] == "step" and message[1].kind == "start":
            # a thread's start step has no user frame; point at the target
            message = ("step", message[1]._replace(location=target_location(self.target)))
        return message

    def dump_stack(self) -> str:
        frame = sys._current_frames().get(self.thread.ident or -1)
        if frame is None:
            return f"(task {self.name!r} is not running)"
        return f"Stack of task {self.name!r} (thread {self.thread.ident}):\n" + "".join(
            traceback.format_stack(frame)
        )

    def stop(self, waiting: bool, grace: float) -> Optional[str]:
        import time

        if waiting:
            self.grant(("abort",))
        # abort every step it still announces (while unwinding, or a task that
        # was thought stuck and reached a step late), until it ends
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            self.thread.join(0.005)
            if not self.thread.is_alive():
                break
            if self._ready.acquire(False) and self._outbox[0] == "step":
                self.grant(("abort",))
        if self.thread.is_alive() and self.thread.ident is not None:
            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(self.thread.ident), ctypes.py_object(TaskAborted)
            )
            self.thread.join(grace)
        if self.thread.is_alive():
            return (
                f"task thread {self.name!r} is stuck in uncontrolled code and could not be "
                "stopped; it is left running as a daemon thread"
            )
        return None


__all__ = ["ThreadTask", "Step", "describe_exception"]
