"""The controller loop: exactly one task runs at a time.

Every task stands at a pending :class:`~races._core.step.Step`.  Each turn the
controller computes which pending steps are enabled (the models say they would
not block), lets the forced schedule or the strategy pick one task, applies
the step to the model, records it in the trace and lets that task run to its
next step.  Nothing enabled and some task unfinished means deadlock or a
blocked task, explained from the models; no wall clock is involved except the
per-step ``timeout`` that catches a task stuck in uncontrolled code.

The controller talks to tasks only through :class:`TaskHandle`; it does not
know whether they are threads or processes.

Tasks may start tasks: a ``start`` step of a ``process``/``thread`` model
(:mod:`races.primitives.process`) makes the controller launch the child with
the run's ``spawner``, wait for its boot and append a :class:`TaskRecord` that
names its logical parent.  When a task ends, the daemon processes it started
are terminated at their step (:meth:`Controller.terminate_task`, which reports
the work they never did); when only daemons are left, the program has exited.
"""
from __future__ import annotations

import os
import threading
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from . import diagnose
from .clock import VirtualClock
from .model import OK as _OK
from .model import Model, model_class
from .schedule import Infeasible, ScheduleDriver
from .step import Failure, Step, TraceEntry


class TaskHandle:
    """The transport's side of one task, as the controller sees it."""

    name: str

    def start(self) -> None:
        raise NotImplementedError

    def grant(self, reply: tuple) -> None:
        """Let the task pass its pending step with ``reply``."""
        raise NotImplementedError

    def wait_event(self, timeout: float) -> tuple:
        """Block until the task reports: ``("step", Step)``, ``("done", None)``,
        ``("error", (type, message, traceback))``, ``("aborted", None)``,
        ``("crash", exitcode)`` or ``("timeout", None)``."""
        raise NotImplementedError

    def dump_stack(self) -> str:
        raise NotImplementedError

    def stop(self, waiting: bool, grace: float) -> Optional[str]:
        """End the task (aborting it at its step if ``waiting``) and reap it.
        Return a note when something could not be reaped."""
        raise NotImplementedError


_START = Step("start", "start")


class TaskRecord:
    """The controller's view of one task."""

    __slots__ = (
        "name", "index", "handle", "pending", "since", "status", "passed", "last_location",
        "parent", "daemon", "kind", "model",
    )

    def __init__(self, name: str, index: int, handle: TaskHandle) -> None:
        self.name = name
        self.index = index
        self.handle = handle
        self.pending: Step = _START  # a Step is immutable: one for every new record
        self.since = 0.0
        # booting -> pending <-> running -> done | failed | aborted
        self.status = "booting"
        self.passed: List[str] = []
        self.last_location = "?"
        # tasks started from tasks: the logical parent, daemon flag and kind
        # ("task" for the run's own tasks, "process" or "thread" for children)
        self.parent: Optional[str] = None
        self.daemon = False
        self.kind = "task"
        self.model: Optional[Model] = None  # the model of ``pending`` (set with it)


_new_tuple = tuple.__new__  # builds a NamedTuple without its Python-level __new__
_inline: List[Any] = []


def _inline_driver() -> Any:
    """``inline.InlineDriver`` (it imports this module: imported on first use, once)."""
    if not _inline:
        from .inline import InlineDriver

        _inline.append(InlineDriver)
    return _inline[0]


class _Stop(Exception):
    """Ends the run with ``failure``."""

    def __init__(self, failure: Failure) -> None:
        self.failure = failure


class Controller:
    def __init__(
        self,
        handles: Sequence[TaskHandle],
        strategy,
        schedule: ScheduleDriver,
        timeout: float,
        max_steps: int,
    ) -> None:
        self.tasks = [TaskRecord(h.name, i, h) for i, h in enumerate(handles)]
        self._by_name = {t.name: t for t in self.tasks}
        self.task_names = [t.name for t in self.tasks]
        self.strategy = strategy
        self.schedule = schedule
        self.timeout = timeout
        self.max_steps = max_steps
        self.clock = VirtualClock()
        self.trace: List[TraceEntry] = []
        self.choices: List[int] = []
        # models' answers that had alternatives: (task choices made before it, k)
        self.values: List[Tuple[int, int]] = []
        self.warnings: List[str] = []
        self.notes: List[str] = []
        self.models: Dict[Tuple[str, Optional[str]], Model] = {}
        self._points_seen: List[str] = []
        self._points_set: set = set()
        self.current: Optional[TaskRecord] = None
        self.after_boot = lambda: None
        # thread tasks can run the controller's decisions themselves (see inline.py)
        self.inline = False
        self._driver: Any = None
        # dynamic tasks: spawner(name, call) -> TaskHandle, set by the runner
        self.spawner: Optional[Callable[[str, Any], TaskHandle]] = None
        # observers(task, step, reply) of every step taken; hooks(record) at a task's end
        self.observers: List[Callable[[str, Step, tuple], None]] = []
        self.on_task_end: List[Callable[[TaskRecord], None]] = []
        self.extras: Dict[str, Any] = {}
        self._step_note = ""
        self._daemons = False  # some task is a daemon (only tasks started from tasks)
        # the strategy is exactly the default order: _decide() picks without calling it
        self._plain_order = type(strategy).__name__ == "NonPreemptive" and type(strategy).__module__ == (
            "races.strategies.nonpreemptive"
        )

    # -- queries used by models, the schedule driver and the diagnosis -----
    def task(self, name: str) -> TaskRecord:
        record = self._by_name.get(name)
        if record is None:  # a child a schedule names before it was started
            record = TaskRecord(name, -1, TaskHandle())
            record.status = "not started yet"
        return record

    def model_for(self, step: Step) -> Model:
        key = (step.kind, step.obj)
        model = self.models.get(key)
        if model is None:
            cls = model_class(step.kind)
            model = cls(step.obj or step.kind, step.label or step.kind, self)
            # a model that keeps the base's enabled()/apply() never blocks and replies OK:
            # the hot path skips those calls (see _decide, _take)
            model._races_always = cls.enabled is Model.enabled
            model._races_plain = model._races_always and cls.apply is Model.apply
            self.models[key] = model
        return model

    def blocked_reason(self, record: TaskRecord) -> str:
        return self.model_for(record.pending).blocked_reason(record.name, record.pending)

    def point_seen(self, point: str) -> bool:
        return point in self._points_set

    def points_seen(self) -> List[str]:
        return list(self._points_seen)

    def where_tasks_stand(self) -> str:
        lines = ["where each task stands:"]
        for t in self.tasks:
            if t.status == "pending":
                state = f"at {t.pending.describe()} ({t.pending.location})"
                if not self._enabled(t):
                    state += f", blocked: {self.blocked_reason(t)}"
            elif t.status == "done":
                state = "finished"
            elif t.status == "terminated":
                state = "terminated"
            else:
                state = t.status
            lines.append(f"  {t.name}: {state}")
        return "\n".join(lines)

    # -- the loop -----------------------------------------------------------
    def run(self) -> Optional[Failure]:
        failure: Optional[Failure] = None
        try:
            for t in self.tasks:
                t.handle.start()
            for t in self.tasks:
                self._await(t)
            self.after_boot()
            if self.inline:
                self._driver = _inline_driver()(self)
                self._driver.drive()
            else:
                self._loop()
        except _Stop as stop:
            failure = stop.failure
        except Infeasible as infeasible:
            failure = infeasible.failure
        finally:
            self._shutdown()
        if failure is None:
            for model in list(self.models.values()):
                at_exit = getattr(model, "at_exit", None)
                note = at_exit() if at_exit is not None else None
                if note:
                    self.warnings.append(note)
        self.strategy.finished(failure is not None)
        return failure

    def dispose(self) -> None:
        """Break the reference cycles of a finished run (handles and records point
        at each other; the driver, the models and the observers point back at the
        controller) once its Result is made, so that its objects are freed at once
        instead of waiting for the cyclic garbage collector: an exploration makes
        thousands of runs, and their garbage kept the collector busy."""
        for t in self.tasks:
            t.model = None
            handle = t.handle
            if getattr(handle, "record", None) is t:
                handle.record = None  # type: ignore[attr-defined]  # thread handles only
            if getattr(handle, "driver", None) is not None:
                handle.driver = None  # type: ignore[attr-defined]
        self._driver = None
        self.models = {}
        self.observers = []
        self.on_task_end = []
        self.extras = {}

    def _enabled(self, t: TaskRecord) -> bool:
        step = t.pending
        model = t.model
        if model is None:
            model = t.model = self.model_for(step)
        if model._races_always or model.enabled(t.name, step):
            return True
        return step.timeout is not None and self.clock.now >= t.since + step.timeout

    def _loop(self) -> None:
        while True:
            pick = self._decide()
            if pick is None:
                return
            reply = self._take(pick)
            pick.handle.grant(reply)
            self._await(pick)

    def _decide(self) -> Optional[TaskRecord]:
        """The task to run next, or None when every task has ended.
        Raises _Stop (deadlock, blocked, max_steps) or Infeasible (schedule)."""
        schedule = self.schedule
        while True:
            if self._daemons:
                live = [t for t in self.tasks if t.status == "pending"]
                if live and all(t.daemon for t in live):
                    # only daemons are left: the program exits and takes them down
                    for t in live:
                        self.terminate_task(
                            t, f"daemon of {t.parent}" if t.kind == "process" else "daemon thread at exit"
                        )
                    live = []
                if not live:
                    return None
                self._check_max_steps()
                enabled = [t for t in live if self._enabled(t)]
                names = [t.name for t in enabled]
                pending = {t.name: t.pending for t in live}
            else:
                # one pass: the live tasks, the enabled ones (in task order), their steps
                live = []
                enabled = []
                names = []
                pending = {}
                for t in self.tasks:
                    if t.status != "pending":
                        continue
                    live.append(t)
                    step = pending[t.name] = t.pending
                    model = t.model
                    if model is None:
                        model = t.model = self.model_for(step)
                    if (
                        model._races_always or model.enabled(t.name, step)
                        or (step.timeout is not None and self.clock.now >= t.since + step.timeout)
                    ):
                        enabled.append(t)
                        names.append(t.name)
                if not live:
                    return None
                self._check_max_steps()
            if schedule.position < len(schedule.steps):
                pick = schedule.pick(self, enabled)
                if pick is not None:
                    return pick
            if not enabled:
                if self._advance_clock(live):
                    continue
                raise _Stop(diagnose.no_task_can_run(self, live))
            current = self.current
            if self._plain_order:  # NonPreemptive.choose(), inlined
                return current if current is not None and current in enabled else enabled[0]
            return self._by_name[self.strategy.choose(names, current.name if current is not None else None, pending)]

    def _check_max_steps(self) -> None:
        if len(self.choices) >= self.max_steps:
            raise _Stop(Failure(
                "timeout",
                f"the run took more than max_steps={self.max_steps} steps "
                "(a livelock, or raise max_steps)\n" + self.where_tasks_stand(),
            ))

    def choose_value(self, options: Sequence[str]) -> int:
        """A model asks which of ``options`` the step being taken answers (``0``
        is the current state, the others stale views real code may see too).
        The strategy picks; the pick goes into the token and the step's note."""
        if len(options) < 2:
            return 0
        k = self.strategy.choose_value(options)
        if not 0 <= k < len(options):
            raise ValueError(f"strategy answered {k!r} to a question with {len(options)} options")
        self.values.append((len(self.choices), k))
        if k:
            self._step_note = options[k]
        return k

    def _advance_clock(self, live: List[TaskRecord]) -> bool:
        deadlines = [t.since + t.pending.timeout for t in live if t.pending.timeout is not None]
        if not deadlines:
            return False
        self.clock.advance_to(min(deadlines))
        return True

    def _take(self, t: TaskRecord) -> tuple:
        """Apply ``t``'s pending step to the model and record it; return its reply."""
        step = t.pending
        model = t.model
        if model is None:
            model = t.model = self.model_for(step)
        note = ""
        self.choices.append(t.index)  # before apply: an answer the model asks for comes after it
        if model._races_plain:
            reply = _OK
        else:
            self._step_note = ""
            if model._races_always or model.enabled(t.name, step):
                reply = model.apply(t.name, step)
            else:
                reply = model.on_timeout(t.name, step)
                note = f"timed out after {step.timeout:g}s"
            if self._step_note:
                note = self._step_note
                self._step_note = ""
        trace = self.trace
        trace.append(_new_tuple(TraceEntry, (
            len(trace) + 1, t.name, step.name, step.kind, step.label, step.location, self.clock.now, note,
        )))
        if self.observers:
            kind = step.kind
            for observe in self.observers:
                kinds = getattr(observe, "KINDS", None)
                if kinds is None or kind in kinds:
                    observe(t.name, step, reply)
        t.status = "running"
        self.current = t
        return reply

    def _await(self, t: TaskRecord) -> None:
        self._on_event(t, t.handle.wait_event(self.timeout))

    def _on_event(self, t: TaskRecord, event: tuple) -> None:
        """Take in what task ``t`` reported: its next step, or how it ended."""
        tag = event[0]
        if tag == "step":
            self._on_step(t, event[1])
            return
        self._task_ended(t, tag)
        if tag == "done":
            return
        if tag == "error":
            type_name, message, tb = event[1]
            raise _Stop(Failure(
                "exception", f"task {t.name!r} raised {type_name}: {message}", t.name, tb,
            ))
        if tag == "crash":
            raise _Stop(Failure("crash", f"task {t.name!r} died {describe_exit(event[1])}", t.name))
        if tag == "timeout":
            stack = t.handle.dump_stack()
            t.status = "stuck"
            raise _Stop(Failure(
                "timeout",
                f"task {t.name!r} neither reached a sync point nor ended within "
                f"{self.timeout:g}s of wall time (blocked in uncontrolled code?); "
                f"its last sync point was {t.last_location}",
                t.name,
                stack,
            ))
        raise _Stop(Failure("crash", f"task {t.name!r} sent an unexpected message {event!r}", t.name))

    def _on_step(self, t: TaskRecord, step: Step) -> None:
        """Task ``t`` stands at ``step`` (``_on_event`` of a ``("step", step)``)."""
        t.pending = step
        t.model = None  # looked up when first asked
        t.since = self.clock.now
        t.status = "pending"
        t.last_location = step.location
        name = step.name
        t.passed.append(name)
        seen = self._points_set
        if name not in seen:
            seen.add(name)
            self._points_seen.append(name)
        if step.label:
            name = f"{step.label}.{name}"
            if name not in seen:
                seen.add(name)
                self._points_seen.append(name)

    def _task_ended(self, t: TaskRecord, tag: str) -> None:
        t.status = tag if tag == "done" or tag == "aborted" else "failed"
        if tag == "done":
            trace = self.trace
            trace.append(_new_tuple(TraceEntry, (
                len(trace) + 1, t.name, "end", "end", None, t.last_location, self.clock.now, "",
            )))
        for model in list(self.models.values()):
            model.task_ended(t.name)
        if tag == "done":
            for hook in list(self.on_task_end):
                hook(t)
            if t.kind != "thread" and self._daemons:
                # its exit terminates the daemon processes it started (multiprocessing's atexit)
                for child in list(self.tasks):
                    if (
                        child.parent == t.name and child.daemon and child.kind == "process"
                        and child.status in ("pending", "booting")
                    ):
                        self.terminate_task(child, f"daemon of {t.name}")
            if getattr(t.handle, "threads", None):
                # the end of a task process's main thread (which joined its non-daemon
                # threads first): the process exits, taking its other threads with it
                for child in list(self.tasks):
                    if getattr(child.handle, "root", None) is t.handle and child.status in ("pending", "booting"):
                        self.terminate_task(
                            child, f"daemon thread at exit of {t.name}" if child.daemon else f"{t.name} ended"
                        )

    # -- tasks started from tasks ---------------------------------------------
    def start_child(self, parent_name: str, step: Step) -> tuple:
        """Launch the child a ``start`` step describes as a new task; wait for its
        boot.  Returns the reply for the parent: ``("ok", (task name, pid))``."""
        spec = step.args[0]
        parent = self._by_name[parent_name]
        kind = spec["kind"]
        if kind == "process" and parent.kind == "process" and parent.daemon:
            return ("raise", AssertionError("daemonic processes are not allowed to have children"))
        if self.spawner is None:
            return ("raise", RuntimeError("this run cannot start tasks from tasks"))
        base = f"{parent_name}/{spec['name']}".replace(":", "_")
        name, n = base, 2
        while name in self._by_name:
            name, n = f"{base}~{n}", n + 1
        # a thread of a task process runs in that process (see process_threads)
        spawn = getattr(parent.handle, "spawn_thread", None) if kind == "thread" else None
        try:
            handle: TaskHandle = (spawn or self.spawner)(name, spec["call"])
            handle.start()
        except Exception as exc:  # noqa: BLE001 - the parent's start() raises it
            return ("raise", exc)
        record = TaskRecord(name, len(self.tasks), handle)
        record.parent = parent_name
        record.daemon = bool(spec["daemon"])
        self._daemons = self._daemons or record.daemon
        record.kind = kind
        self.tasks.append(record)
        self._by_name[name] = record
        self.task_names.append(name)
        names = getattr(self.strategy, "task_names", None)
        if isinstance(names, list) and name not in names:
            names.append(name)  # a Replay strategy maps choices to names by index
        self._await(record)
        if self._driver is not None:
            handle.driver = self._driver  # type: ignore[attr-defined]
            handle.record = record  # type: ignore[attr-defined]
        self._step_note = f"started {name}" + (" (daemon)" if record.daemon else "")
        proc = getattr(handle, "proc", None)
        return ("ok", (name, getattr(proc, "pid", None) or os.getpid()))

    def terminate_task(self, t: TaskRecord, reason: str) -> None:
        """Stop task ``t`` at its pending step (terminate(), kill(), a daemon whose
        program ended) and report the work it never did."""
        if t.status not in ("pending", "booting"):
            return
        handle = t.handle
        if getattr(handle, "driver", None) is not None:
            # its last messages use the plain handoff
            handle.driver = None  # type: ignore[attr-defined]
        was = t.pending
        thread = getattr(handle, "thread", None)
        if thread is not None and thread.ident == threading.get_ident():
            # inline mode: this very task's thread is taking the controller's
            # turn; it is aborted at its step as soon as it waits there
            handle.grant(("abort",))
        else:
            note = handle.stop(t.status == "pending", grace=2.0)
            if note:
                self.notes.append(note)
        t.status = "terminated"
        self.trace.append(TraceEntry(
            len(self.trace) + 1, t.name, f"(terminated: {reason})", "terminated", None,
            was.location, self.clock.now,
        ))
        from ..primitives.process import lost_work

        lost = lost_work(getattr(handle, "target", None), was.location)
        at = "before it ran" if was.kind == "start" else f"at {was.describe()} ({was.location})"
        self.warnings.append(
            f"task {t.name!r} was terminated ({reason}) {at}; its unfinished work was lost"
            + (f": it never reached {lost}" if lost else "")
        )
        for model in list(self.models.values()):
            model.task_ended(t.name)
        if getattr(handle, "threads", None):  # its process is gone: so are its threads
            for child in list(self.tasks):
                if getattr(child.handle, "root", None) is handle:
                    self.terminate_task(child, f"its process {t.name} ended: {reason}")

    def _shutdown(self) -> None:
        for t in self.tasks:
            if t.status == "booting":
                # started, but its first report was never read
                try:
                    self._await(t)
                except _Stop:
                    pass
            note = t.handle.stop(t.status == "pending", grace=2.0)
            if note:
                self.notes.append(note)


def describe_exit(code: Optional[int]) -> str:
    import signal

    if code is None:
        return "with an unknown exit status"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"from {name} (exit code {code})"
    return f"with exit code {code} before finishing its work"
