"""What a run returns: outcome, trace, token, and the readable report."""
from __future__ import annotations

from typing import Any, List, Optional, Sequence

from .step import Failure, TraceEntry


class Result:
    """The outcome of one controlled run (or of an exploration, which adds
    ``schedules`` and ``exhaustive``)."""

    def __init__(
        self,
        failure: Optional[Failure],
        trace: Sequence[TraceEntry],
        token: str,
        task_names: Sequence[str],
        schedule: Optional[Sequence[str]] = None,
        warnings: Sequence[str] = (),
        notes: Sequence[str] = (),
        options: Optional[dict] = None,
    ) -> None:
        self.failure = failure
        self.trace: List[TraceEntry] = list(trace)
        self.token = token
        self.task_names = list(task_names)
        self.schedule = list(schedule) if schedule is not None else None
        self.warnings = list(warnings)
        self.notes = list(notes)
        self.options = dict(options or {})
        self.schedules = 1
        self.exhaustive = False
        self.races: List[Any] = []
        self.replay_command: Optional[str] = None

    @property
    def failed(self) -> bool:
        return self.failure is not None

    def steps(self) -> List[tuple]:
        """The trace as ``(task, sync point)`` pairs: handy to compare runs."""
        return [(e.task, e.describe()) for e in self.trace]

    def report(self) -> str:
        from ..reporting.report import format_report

        return format_report(self)

    def __repr__(self) -> str:
        status = f"failed ({self.failure.kind})" if self.failure else "passed"
        return f"<races.Result {status}, {len(self.trace)} steps, token={self.token!r}>"
