"""Controlled ``Process`` / ``Thread`` handles: tasks started from tasks.

Inside the harness, starting a child is a step (kind ``process`` or
``thread``, name ``start``) whose ``args`` carry a :class:`ChildCall` (the
target with its args and kwargs), the child's name and whether it is a
daemon.  The controller launches the child as a new task with the run's
backend (a thread, or a process forked by the run's launcher), waits for it to
boot and records its logical parent.  ``join``, ``is_alive``, ``exitcode``,
``terminate`` and ``kill`` are steps the :class:`ChildModel` answers.

A thread started inside a task process is the exception: it runs in that
process (:mod:`races._core.process_threads`), so its target stays there and
the step carries a picklable ``ThreadRef`` in its place (:func:`lost_work`
reads the source through it).

Patch mode (:mod:`races._core.patch_mode`) routes ``multiprocessing.Process``
and ``threading.Thread`` objects started from a task to :class:`ChildHandle`;
:class:`Process` and :class:`Thread` here are the same handles for explicit
use.  Outside the harness they are the real classes.

Task names of children are ``<parent>/<name>``, where an unnamed child is
``Process-N`` / ``Thread-N`` counted per parent, so names repeat run to run.
"""
from __future__ import annotations

import collections
import copy
import inspect
import os
import signal
from typing import Any, Callable, Dict, List, Optional, Tuple

from .._core import process_threads
from .._core.agent import current
from .._core.ids import new_id
from .._core.model import OK, Model, register
from .._core.step import Step, short_path

ENDED = ("done", "failed", "aborted", "terminated", "stuck")

_name_counters: Dict[Tuple[str, str], int] = {}


def reset() -> None:
    """Called at the start of every run so child names repeat from run to run."""
    _name_counters.clear()


def auto_name(parent: str, kind: str) -> str:
    """``Process-N`` / ``Thread-N``, counted per parent task."""
    key = (parent, kind)
    _name_counters[key] = _name_counters.get(key, 0) + 1
    return f"{kind}-{_name_counters[key]}"


class ChildCall:
    """What a child task runs: ``func(*args, **kwargs)``; ``func`` names its location."""

    def __init__(self, func: Callable, args: tuple = (), kwargs: Optional[dict] = None) -> None:
        self.func = func
        self.args = tuple(args)
        self.kwargs = dict(kwargs or {})
        self.daemon = False  # set by ChildHandle.start; a task process reads it at boot

    def __call__(self, state: Any) -> Any:
        return self.func(*self.args, **self.kwargs)

    def __repr__(self) -> str:
        return f"<races child {getattr(self.func, '__qualname__', self.func)!r}>"


def _portable(proc: Any) -> Any:
    """A copy of a ``Process`` subclass instance that pickles (no authkey, no popen)."""
    clone = copy.copy(proc)
    config = dict(getattr(proc, "_config", {}))
    config.pop("authkey", None)
    clone._config = config
    clone.__dict__.pop("_races_child", None)
    clone._popen = None
    return clone


def call_of(obj: Any, kind: str) -> ChildCall:
    """The ChildCall for a ``multiprocessing.Process`` / ``threading.Thread`` object."""
    if kind == "process":
        from multiprocessing.process import BaseProcess

        if type(obj).run is not BaseProcess.run:
            return ChildCall(_portable(obj).run)
        return ChildCall(obj._target or _nothing, obj._args, obj._kwargs)
    import threading

    if type(obj).run is not threading.Thread.run:
        return ChildCall(obj.run)
    return ChildCall(obj._target or _nothing, obj._args, obj._kwargs)


def _nothing(*args: Any, **kwargs: Any) -> None:
    return None


class ChildHandle:
    """The task side of one controlled child: each method is a step."""

    def __init__(self, kind: str, call: ChildCall, name: str, daemon: bool) -> None:
        self.kind = kind
        self.call = call
        self.name = name
        self.daemon = bool(daemon)
        self._id = new_id("Process" if kind == "process" else "Thread")
        self.task: Optional[str] = None
        self.pid: Optional[int] = None
        self.started = False
        self._exitcode: Optional[int] = None
        self._alive = False

    def _step(self, name: str, args: tuple = (), timeout: Optional[float] = None) -> Any:
        agent = current()
        if agent is None:
            return None
        return agent.step(self.kind, name, self._id, self.name, args, timeout, depth=3)

    def start(self) -> None:
        agent = current()
        if self.started:
            if self.kind == "process":
                raise AssertionError("cannot start a process twice")
            raise RuntimeError("threads can only be started once")
        self.call.daemon = self.daemon
        call: Any = self.call
        local = self.kind == "thread" and process_threads.ACTIVE
        if local:  # in a task process: the thread runs here, its target stays here
            call = process_threads.register(self)
        spec = {"call": call, "name": self.name, "daemon": self.daemon, "kind": self.kind}
        assert agent is not None
        try:
            self.task, self.pid = agent.step(self.kind, "start", self._id, self.name, (spec,), depth=3)
        except BaseException:
            if local:
                process_threads.forget(self)
            raise
        self.started = True
        self._alive = True

    def join(self, timeout: Optional[float] = None) -> None:
        if not self.started:
            if self.kind == "process":
                raise AssertionError("can only join a started process")
            raise RuntimeError("cannot join thread before it is started")
        if current() is None:
            return
        bound = None if timeout is None else max(0.0, float(timeout))
        self._alive = self._step("join", (), bound)

    def is_alive(self) -> bool:
        if not self.started:
            return False
        if current() is None:
            return False
        self._alive = bool(self._step("is_alive"))
        return self._alive

    @property
    def exitcode(self) -> Optional[int]:
        if not self.started:
            return None
        if current() is not None:
            self._exitcode = self._step("exitcode")
        return self._exitcode

    def terminate(self) -> None:
        if self.started:
            self._step("terminate")

    def kill(self) -> None:
        if self.started:
            self._step("kill")


class _Child:
    """``races.Process`` / ``races.Thread``: a controlled child inside the harness,
    the real class outside it."""

    _kind = "process"

    def __init__(
        self,
        group: Any = None,
        target: Optional[Callable] = None,
        name: Optional[str] = None,
        args: tuple = (),
        kwargs: Optional[dict] = None,
        *,
        daemon: Optional[bool] = None,
    ) -> None:
        self._target = target
        self._args = tuple(args)
        self._kwargs = dict(kwargs or {})
        agent = current()
        label = "Process" if self._kind == "process" else "Thread"
        self.name = name or (auto_name(agent.name, label) if agent is not None else label)
        self.daemon = bool(daemon)
        self._handle: Optional[ChildHandle] = None
        self._real: Any = None

    def run(self) -> None:
        if self._target is not None:
            self._target(*self._args, **self._kwargs)

    def _make_real(self) -> Any:
        if self._kind == "process":
            import multiprocessing

            return multiprocessing.Process(
                target=self._target, name=self.name, args=self._args, kwargs=self._kwargs, daemon=self.daemon
            )
        import threading

        return threading.Thread(
            target=self._target, name=self.name, args=self._args, kwargs=self._kwargs, daemon=self.daemon
        )

    def start(self) -> None:
        if current() is None:
            self._real = self._make_real()
            self._real.start()
            return
        call = ChildCall(self.run) if type(self).run is not _Child.run else ChildCall(
            self._target or _nothing, self._args, self._kwargs
        )
        if self._handle is None:
            self._handle = ChildHandle(self._kind, call, self.name, self.daemon)
        self._handle.start()

    def join(self, timeout: Optional[float] = None) -> None:
        if self._real is not None:
            self._real.join(timeout)
        elif self._handle is not None:
            self._handle.join(timeout)
        else:
            raise AssertionError("can only join a started process")

    def is_alive(self) -> bool:
        if self._real is not None:
            return self._real.is_alive()
        return self._handle.is_alive() if self._handle is not None else False


class Process(_Child):
    """``multiprocessing.Process``, controlled inside the harness."""

    _kind = "process"

    @property
    def exitcode(self) -> Optional[int]:
        if self._real is not None:
            return self._real.exitcode
        return self._handle.exitcode if self._handle is not None else None

    @property
    def pid(self) -> Optional[int]:
        if self._real is not None:
            return self._real.pid
        return self._handle.pid if self._handle is not None else None

    def terminate(self) -> None:
        if self._real is not None:
            self._real.terminate()
        elif self._handle is not None:
            self._handle.terminate()

    def kill(self) -> None:
        if self._real is not None:
            self._real.kill()
        elif self._handle is not None:
            self._handle.kill()


class Thread(_Child):
    """``threading.Thread``, controlled inside the harness (in a task process:
    a thread of that process)."""

    _kind = "thread"


# -- the controller's side ----------------------------------------------------------


class QueuePutters:
    """Which task put each item still in a multiprocessing-style queue.

    An observer of every step the controller takes (read-only on the queue
    models: it only looks at their ``items`` and ``join_thread_cancelled``).
    The deque of a queue is aligned with the *tail* of the model's items:
    items put before tracking began are simply not attributed.
    """

    KINDS = ("queue", "joinable_queue")

    def __init__(self, run: Any) -> None:
        self.run = run
        self.by_obj: Dict[str, collections.deque] = {}

    def __call__(self, task: str, step: Step, reply: tuple) -> None:
        if step.kind not in self.KINDS:
            return
        model = self.run.models.get((step.kind, step.obj))
        if model is None or step.obj is None:
            return
        putters = self.by_obj.setdefault(step.obj, collections.deque())
        if step.name == "put" and reply and reply[0] == "ok":
            putters.append(task)
        while len(putters) > len(getattr(model, "items", ())):
            putters.popleft()

    def unflushed(self, task: str) -> List[Tuple[str, int]]:
        """``(queue label, count)`` of items ``task`` put that are still queued,
        on queues whose join thread was not cancelled."""
        out = []
        for obj, putters in self.by_obj.items():
            count = sum(1 for who in putters if who == task)
            if not count:
                continue
            model = None
            for kind in self.KINDS:
                model = self.run.models.get((kind, obj)) or model
            if model is not None and not getattr(model, "join_thread_cancelled", False):
                out.append((model.label, count))
        return out


def queue_putters(run: Any) -> QueuePutters:
    tracker = run.extras.get("queue_putters")
    if tracker is None:
        tracker = run.extras["queue_putters"] = QueuePutters(run)
        run.observers.append(tracker)
    return tracker


def lost_work(target: Any, location: str) -> str:
    """The source lines of the child's target from ``location`` on (not run)."""
    func = getattr(target, "func", target)
    code = getattr(func, "__code__", None)
    if isinstance(func, process_threads.ThreadRef):  # a thread of a task process: its source
        found = func.source()
        if found is None:
            return ""
        lines, start, filename = found
    elif code is None:
        return ""
    else:
        try:
            lines, start = inspect.getsourcelines(code)
        except (OSError, TypeError):
            return ""
        filename = code.co_filename
    file_part, _, line_part = location.rpartition(":")
    try:
        line = int(line_part)
    except ValueError:
        return ""
    if os.path.abspath(file_part) != os.path.abspath(filename):
        return ""
    if not start <= line < start + len(lines):
        return ""
    first = max(line, start + 1)
    where = short_path(filename)
    out = []
    for number, text in enumerate(lines, start):
        text = text.strip()
        if number >= first and text and not text.startswith("#"):
            out.append(f"{where}:{number} {text}")
    return "; ".join(out)


@register("process")
class ChildModel(Model):
    """One child: started by whom, which task it is, how it ended."""

    def __init__(self, obj: str, label: str, run: Any) -> None:
        super().__init__(obj, label, run)
        self.child: Optional[str] = None
        self.code: Optional[int] = None
        self.started_at = "?"
        if self.kind == "process":
            queue_putters(run)

    # -- state ------------------------------------------------------------------
    def _record(self) -> Any:
        return self.run.task(self.child) if self.child is not None else None

    def ended(self) -> bool:
        record = self._record()
        return record is not None and record.status in ENDED

    def unflushed(self) -> List[Tuple[str, int]]:
        if self.kind != "process" or self.child is None:
            return []
        tracker = self.run.extras.get("queue_putters")
        return tracker.unflushed(self.child) if tracker is not None else []

    def finished(self) -> bool:
        return self.ended() and not self.unflushed()

    def exitcode(self) -> Optional[int]:
        if not self.finished():
            return None
        if self.code is not None:
            return self.code
        status = self._record().status
        if status == "done":
            return 0
        if status == "terminated":
            return -signal.SIGTERM
        return 1

    def at_exit(self) -> Optional[str]:
        """A warning at the end of a run: the child ended with items on a queue
        that nobody took (the exit of its parent joins it, which could hang)."""
        pending = self.unflushed() if self.ended() else []
        if not pending:
            return None
        parts = ", ".join(f"{n} item{'s' if n != 1 else ''} on queue {label}" for label, n in pending)
        return (
            f"{self.child} ended with {parts} that nobody has taken: a process cannot end before "
            "its queue items are flushed, so joining it (as its parent's exit does) may hang; "
            "get them, or call cancel_join_thread()"
        )

    # -- the Model interface ----------------------------------------------------
    def enabled(self, task: str, step: Step) -> bool:
        if step.name == "join" and self.child is not None:
            return self.finished()
        return True

    def apply(self, task: str, step: Step) -> tuple:
        name = step.name
        if name == "start":
            reply = self.run.start_child(task, step)
            if reply[0] == "ok":
                self.child = reply[1][0]
                self.started_at = step.location
            return reply
        if name == "join":
            return ("ok", not self.finished())
        if name == "is_alive":
            return ("ok", not self.finished())
        if name == "exitcode":
            return ("ok", self.exitcode())
        if name in ("terminate", "kill"):
            record = self._record()
            if record is not None and not self.ended():
                how = "terminated" if name == "terminate" else "killed"
                self.code = -signal.SIGTERM if name == "terminate" else -signal.SIGKILL
                self.run.terminate_task(record, f"{how} by {task}")
            return OK
        return OK

    def on_timeout(self, task: str, step: Step) -> tuple:
        return ("ok", True)  # join(timeout) ran out: still alive

    def waits_for(self, task: str, step: Step) -> List[str]:
        if step.name == "join" and self.child is not None and not self.ended():
            return [self.child]
        return []

    def blocked_reason(self, task: str, step: Step) -> str:
        if step.name != "join" or self.child is None:
            return super().blocked_reason(task, step)
        where = f"{self.label}.join ({step.location})"
        pending = self.unflushed()
        if self.ended() and pending:
            parts = ", ".join(
                f"{n} item{'s' if n != 1 else ''} on queue {label}" for label, n in pending
            )
            return (
                f"waits forever in {where}: the child {self.child} put {parts} that nobody has "
                "taken; a process cannot end before its queue items are flushed — get before "
                "join, or cancel_join_thread()"
            )
        record = self._record()
        if record is not None and record.status == "pending":
            state = f"which stands at {record.pending.describe()} ({record.pending.location})"
            if not self.run._enabled(record):
                state += f", blocked: {self.run.blocked_reason(record)}"
        else:
            state = f"which is {record.status if record is not None else 'unknown'}"
        return f"waits in {where} for {self.child}, {state}"


@register("thread")
class ThreadChildModel(ChildModel):
    """A ``threading.Thread`` child: no exit code, no queue flushing."""

    def exitcode(self) -> Optional[int]:
        return None


__all__ = ["ChildCall", "ChildHandle", "ChildModel", "Process", "Thread", "lost_work"]
