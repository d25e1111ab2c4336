"""Tasks as OS processes: the pipe-based transport.

Each task process holds one end of a duplex ``Pipe``; at a sync point it sends
its step and blocks on ``recv``.  The controller waits on the pipe and the
process sentinel together, so a crash is seen at once and a stuck task is
bounded by the per-step timeout.  On timeout the task's stacks are dumped by
``faulthandler`` (registered on SIGUSR1 in the child) before it is killed.

How the process comes to exist is the launcher's business
(:mod:`races._core.launchers`).

**Deferred exits.**  A task process that has sent its last message still has
to exit: its finalizers, then the kernel tearing down its memory, about a
millisecond.  A single run waits for that, so no process outlives it.  An
exploration (:func:`deferred_exits`) lets the exits of one run overlap the
next run instead: a task that said its last word is left to finish exiting
on another core, at most :data:`LINGER_MAX` at a time, and every one is
waited for (killed if stuck, bounded) before the exploration returns.
"""
from __future__ import annotations

import contextlib
import os
import select
import signal
import tempfile
import time
from typing import Any, Callable, Iterator, List, Optional

from .controller import TaskHandle
from .patches import real_sleep
from .thread_transport import target_location
from .wire import OK_NONE, Wire, dumps


LINGER_MAX = 16  # task processes left exiting at once, at most
# the processes of ended tasks still exiting (None: each run waits for its own)
_lingering: Optional[List[Any]] = None


def _reap(proc: Any, grace: float, what: str = "task process") -> Optional[str]:
    """Wait (bounded) for ``proc`` to exit, killing it if it does not, and
    release it; a note when it could not be reaped."""
    try:
        if not proc.wait_exit(grace):
            proc.kill()
            if not proc.wait_exit(grace):
                return f"{what} (pid {proc.pid}) could not be reaped"
        return None
    finally:
        proc.release()


@contextlib.contextmanager
def deferred_exits(notes: List[str], grace: float = 2.0) -> Iterator[None]:
    """Within: the runs' ended task processes exit while the next runs go on;
    at the end every one of them is waited for (what could not be reaped is
    added to ``notes``)."""
    global _lingering
    if _lingering is not None:  # nested: the outer one waits
        yield
        return
    _lingering = []
    try:
        yield
    finally:
        lingering, _lingering = _lingering, None
        for proc in lingering:
            note = _reap(proc, grace)
            if note:
                notes.append(note)


class ProcessTask(TaskHandle):
    def __init__(self, name: str, target: Callable, state: Any, launcher: Any, config: dict) -> None:
        self.name = name
        self.target = target
        self.state = state
        self.launcher = launcher
        self.dump_path: Optional[str] = None
        if not hasattr(os, "memfd_create"):  # elsewhere the child dumps into a memfd
            fd, self.dump_path = tempfile.mkstemp(prefix=f"races-{os.getpid()}-", suffix=".stack")
            os.close(fd)
        self.config = dict(config, dump_path=self.dump_path)
        self.conn: Any = None
        self.wire: Optional[Wire] = None
        self.proc: Any = None
        self._poller: Any = None
        self._stopped = False
        # the run's tasks not ended yet (shared through the run's launcher): a
        # task that ends while others run exits on another core (see worker)
        try:
            self._live: List[int] = launcher.__dict__.setdefault("_races_live", [0])
        except AttributeError:
            self._live = [1]
        self._counted = False
        self._said_last = False  # it sent its last message and was told how to exit
        self.threads: List[Any] = []  # the threads of its process that are tasks

    def line(self) -> Wire:
        """The wire its main thread's children's descriptors travel on."""
        return self._wire()

    def spawn_thread(self, name: str, target: Any) -> TaskHandle:
        """The handle of a thread this task starts in its own process."""
        from .process_thread_transport import ProcessThreadTask

        return ProcessThreadTask(name, target, self, self)

    def start(self) -> None:
        self.conn, self.proc = self.launcher.launch(self.name, self.target, self.state, self.config)
        self._live[0] += 1
        self._counted = True

    def _wire(self) -> Wire:
        """The task's wire; its process exists from here on (a template
        launcher starts a run's tasks together, when the first one is needed)."""
        if self.wire is None:
            self.proc.ready()
            self.wire = Wire(self.conn.fileno())
            # one poll object per task: a single syscall per wait, where
            # multiprocessing.connection.wait builds a selector every call
            self._poller = select.poll()
            self._poller.register(self.wire.fd, select.POLLIN)
            if self.proc.sentinel is not None:
                self._poller.register(self.proc.sentinel, select.POLLIN)
        return self.wire

    def grant(self, reply: tuple) -> None:
        try:
            self._wire().send_bytes(OK_NONE if reply == ("ok", None) else dumps(reply))
        except OSError:
            pass  # it died; wait_event sees the crash

    def wait_event(self, timeout: float) -> tuple:
        wire = self.wire
        if wire is None:
            if self.conn is None:  # never started (its launch failed)
                return ("crash", None)
            try:
                wire = self._wire()
            except OSError:  # its process could not be made
                return ("crash", None)
        if not wire._buf or not wire.buffered():  # (a message read ahead needs no wait)
            ready = self._poller.poll(int(timeout * 1000) if timeout > 0 else 0)
            if not ready:
                return ("timeout", None)
            if len(ready) == 1 and ready[0][0] != wire.fd and not _readable(wire.fd):
                return ("crash", self.proc.exit_code(5.0))  # it ended without a word
        try:
            message = wire.recv()
        except (EOFError, OSError):
            return ("crash", self.proc.exit_code(5.0))
        if message[0] != "step":  # its last message: tell it where to exit
            self._ended()
            try:
                wire.send_bytes(dumps(("exit", self._live[0] > 0)))
                self._said_last = True
            except OSError:
                pass
        elif message[1].kind == "start":
            step = message[1]
            if step.args:  # the descriptor of the task's stack dump (a memfd)
                self.dump_path = f"/proc/{self.proc.pid}/fd/{step.args[0]}"
            message = ("step", step._replace(location=target_location(self.target), args=()))
        return message

    def _ended(self) -> None:
        if self._counted:
            self._counted = False
            self._live[0] -= 1

    def dump_stack(self) -> str:
        if self.proc is None or not self.proc.alive():
            return f"(task {self.name!r} is not running)"
        if self.dump_path is None:
            return f"(task {self.name!r} has no stack dump)"
        try:  # the dump file may be shared (a template's children share one): read what comes now
            start = os.stat(self.dump_path).st_size
        except OSError:
            start = 0
        try:
            self.proc.signal(signal.SIGUSR1)
        except OSError:
            return f"(could not signal task {self.name!r})"
        text = ""
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:  # bounded: faulthandler writes from a signal handler
            real_sleep(0.01)
            try:
                with open(self.dump_path, "rb") as fh:
                    fh.seek(start)
                    latest = fh.read().decode("utf-8", "replace")
            except OSError:
                break
            if latest and latest == text:
                break
            text = latest
        return f"Stack of task {self.name!r} (pid {self.proc.pid}):\n{text}"

    def stop(self, waiting: bool, grace: float) -> Optional[str]:
        if self._stopped:  # a terminated child is stopped again at the end of the run
            return None
        self._stopped = True
        released_by_reap = False
        try:
            if self.proc is None:
                return None
            if self.proc.pending:  # launched, but its process was never made
                self.proc.cancel()
                return None
            if waiting and self.proc.alive():
                self.grant(("abort",))
                deadline = time.monotonic() + grace
                while time.monotonic() < deadline:
                    event = self.wait_event(max(0.0, deadline - time.monotonic()))
                    if event[0] != "step":
                        break
                    self.grant(("abort",))
            self._ended()
            self.conn.close()  # EOF for a task still waiting to be told where to exit
            released_by_reap = True
            if _lingering is not None and self._said_last and not self.threads:
                _lingering.append(self.proc)  # reaped later (see deferred_exits)
                return _reap(_lingering.pop(0), grace) if len(_lingering) > LINGER_MAX else None
            return _reap(self.proc, grace, f"task process {self.name!r}")
        finally:
            if self.conn is not None:
                self.conn.close()
            if self.proc is not None and not released_by_reap:
                self.proc.release()
            if self.dump_path is not None and not self.dump_path.startswith("/proc/"):
                try:
                    os.unlink(self.dump_path)
                except OSError:
                    pass


def _readable(fd: int) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))
