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
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

from . import diagnose
from .clock import VirtualClock
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


class TaskRecord:
    """The controller's view of one task."""

    __slots__ = ("name", "index", "handle", "pending", "since", "status", "passed", "last_location")

    def __init__(self, name: str, index: int, handle: TaskHandle) -> None:
        self.name = name
        self.index = index
        self.handle = handle
        self.pending: Step = Step("start", "start")
        self.since = 0.0
        # booting -> pending <-> running -> done | failed | aborted
        self.status = "booting"
        self.passed: List[str] = []
        self.last_location = "?"


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
        self.warnings: List[str] = []
        self.notes: List[str] = []
        self.models: Dict[Tuple[str, Optional[str]], Model] = {}
        self._points_seen: List[str] = []
        self._points_set: set = set()
        self.current: Optional[TaskRecord] = None
        self.after_boot = lambda: None
        # thread tasks can run the controller's decisions themselves (see inline.py)
        self.inline = False

    # -- queries used by models, the schedule driver and the diagnosis -----
    def task(self, name: str) -> TaskRecord:
        return self._by_name[name]

    def model_for(self, step: Step) -> Model:
        key = (step.kind, step.obj)
        model = self.models.get(key)
        if model is None:
            model = model_class(step.kind)(step.obj or step.kind, step.label or step.kind, self)
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
                from .inline import InlineDriver

                InlineDriver(self).drive()
            else:
                self._loop()
        except _Stop as stop:
            failure = stop.failure
        except Infeasible as infeasible:
            failure = infeasible.failure
        finally:
            self._shutdown()
        self.strategy.finished(failure is not None)
        return failure

    def _enabled(self, t: TaskRecord) -> bool:
        step = t.pending
        if self.model_for(step).enabled(t.name, step):
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
        while True:
            live = [t for t in self.tasks if t.status == "pending"]
            if not live:
                return None
            if len(self.choices) >= self.max_steps:
                raise _Stop(Failure(
                    "timeout",
                    f"the run took more than max_steps={self.max_steps} steps "
                    "(a livelock, or raise max_steps)\n" + self.where_tasks_stand(),
                ))
            enabled = [t for t in live if self._enabled(t)]
            pick = self.schedule.pick(self, enabled)
            if pick is not None:
                return pick
            if not enabled:
                if self._advance_clock(live):
                    continue
                raise _Stop(diagnose.no_task_can_run(self, live))
            current = self.current.name if self.current is not None else None
            name = self.strategy.choose(
                [t.name for t in enabled], current, {t.name: t.pending for t in enabled}
            )
            return self._by_name[name]

    def _advance_clock(self, live: List[TaskRecord]) -> bool:
        deadlines = [t.since + t.pending.timeout for t in live if t.pending.timeout is not None]
        if not deadlines:
            return False
        self.clock.advance_to(min(deadlines))
        return True

    def _take(self, t: TaskRecord) -> tuple:
        """Apply ``t``'s pending step to the model and record it; return its reply."""
        step = t.pending
        model = self.model_for(step)
        note = ""
        if model.enabled(t.name, step):
            reply = model.apply(t.name, step)
        else:
            reply = model.on_timeout(t.name, step)
            note = f"timed out after {step.timeout:g}s"
        self.choices.append(t.index)
        self.trace.append(TraceEntry(
            len(self.trace) + 1, t.name, step.name, step.kind, step.label,
            step.location, self.clock.now, note,
        ))
        t.status = "running"
        self.current = t
        return reply

    def _await(self, t: TaskRecord) -> None:
        self._on_event(t, t.handle.wait_event(self.timeout))

    def _on_event(self, t: TaskRecord, event: tuple) -> None:
        """Take in what task ``t`` reported: its next step, or how it ended."""
        tag = event[0]
        if tag == "step":
            step: Step = event[1]
            t.pending = step
            t.since = self.clock.now
            t.status = "pending"
            t.last_location = step.location
            t.passed.append(step.name)
            for name in (step.name, step.describe()):
                if name not in self._points_set:
                    self._points_set.add(name)
                    self._points_seen.append(name)
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

    def _task_ended(self, t: TaskRecord, tag: str) -> None:
        t.status = {"done": "done", "aborted": "aborted"}.get(tag, "failed")
        if tag == "done":
            self.trace.append(TraceEntry(
                len(self.trace) + 1, t.name, "end", "end", None, t.last_location, self.clock.now,
            ))
        for model in list(self.models.values()):
            model.task_ended(t.name)

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
