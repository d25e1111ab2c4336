"""Forced schedules: parse ``["a", "b:checked", ...]`` and drive a run by them.

A step ``"task"`` lets that task pass its pending sync point and run to its
next one.  A step ``"task:point"`` lets the task run until it stands *at* a
sync point called ``point`` (a ``races.point`` name, ``sleep``, ``acquire``,
``L1.acquire``...), about to pass it; if it already stands there the step is
done at once.

When the list runs out the run continues in the default order (see
:mod:`races.strategies.nonpreemptive`).  A step that cannot be honoured ends
the run with a ``schedule`` failure that names the step and says where every
task stands: this is how a fix shows a bad interleaving is impossible.
"""
from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, List, NamedTuple, Optional, Sequence

from .errors import ScheduleError
from .step import Failure

if TYPE_CHECKING:  # pragma: no cover
    from .controller import Controller, TaskRecord


class ScheduleStep(NamedTuple):
    position: int  # 1-based, as reports print it
    text: str
    task: str
    point: Optional[str]


def parse(schedule: Optional[Sequence[object]], task_names: Sequence[str]) -> List[ScheduleStep]:
    """Validate a schedule against the task names; raise :class:`ScheduleError`."""
    if schedule is None:
        return []
    if isinstance(schedule, (str, bytes)) or not hasattr(schedule, "__iter__"):
        raise ScheduleError(
            f"a schedule is a list of steps like ['t0', 't1:checked'], not {schedule!r}"
        )
    steps = []
    for position, raw in enumerate(schedule, start=1):
        if not isinstance(raw, str):
            raise ScheduleError(
                f"schedule step {position} is {raw!r}: a step is a string 'task' or 'task:point'"
            )
        text = raw.strip()
        task, sep, point = text.partition(":")
        task = task.strip()
        point = point.strip()
        if not task or (sep and not point) or ":" in point:
            raise ScheduleError(
                f"schedule step {position} {raw!r} is malformed: write 'task' or 'task:point'"
            )
        if task not in task_names:
            hint = difflib.get_close_matches(task, task_names, n=1)
            extra = f"; did you mean {hint[0]!r}?" if hint else ""
            raise ScheduleError(
                f"schedule step {position} {raw!r} names unknown task {task!r}; "
                f"the tasks are {', '.join(task_names)}{extra}"
            )
        steps.append(ScheduleStep(position, text, task, point or None))
    return steps


class Infeasible(Exception):
    """Raised by the driver: the schedule cannot be honoured."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


class ScheduleDriver:
    """Walks the forced steps; says which task must run next, or None when done."""

    def __init__(self, steps: List[ScheduleStep]) -> None:
        self.steps = steps
        self.position = 0

    @property
    def exhausted(self) -> bool:
        return self.position >= len(self.steps)

    def pick(self, run: "Controller", enabled: Sequence["TaskRecord"]) -> Optional["TaskRecord"]:
        while self.position < len(self.steps):
            step = self.steps[self.position]
            record = run.task(step.task)
            if step.point is not None and record.status == "pending" and record.pending.matches(step.point):
                self.position += 1
                continue
            if record in enabled:
                if step.point is None:
                    self.position += 1
                return record
            raise Infeasible(self._failure(run, step, record))
        return None

    def _failure(self, run: "Controller", step: ScheduleStep, record: "TaskRecord") -> Failure:
        head = f"schedule step {step.position} {step.text!r} cannot be honoured: "
        if record.status == "done":
            why = f"task {record.name!r} has finished"
            if step.point is not None:
                why += f" without reaching a point {step.point!r}"
        elif record.status == "pending":
            why = f"task {record.name!r} is blocked: {run.blocked_reason(record)}"
            if step.point is not None:
                why += f", before reaching {step.point!r}"
        else:
            why = f"task {record.name!r} is {record.status}"
        if step.point is not None and not run.point_seen(step.point):
            seen = run.points_seen()
            hint = difflib.get_close_matches(step.point, seen, n=1)
            why += (
                f". Unknown point {step.point!r}: no task has stood at a sync point of that name"
                f" in this run (points seen: {', '.join(seen) or 'none'})"
            )
            if hint:
                why += f"; did you mean {hint[0]!r}?"
        return Failure("schedule", head + why + "\n" + run.where_tasks_stand(), record.name)
