"""What a run returns: outcome, trace, token, and the readable report."""
from __future__ import annotations

from typing import Any, Callable, List, Optional, Sequence, Union

from .step import Failure, TraceEntry


class Result:
    """The outcome of one controlled run (or of an exploration, which adds
    ``schedules`` and ``exhaustive``)."""

    def __init__(
        self,
        failure: Optional[Failure],
        trace: Sequence[TraceEntry],
        token: Union[str, Callable[[], str]],
        task_names: Sequence[str],
        schedule: Optional[Sequence[str]] = None,
        warnings: Sequence[str] = (),
        notes: Sequence[str] = (),
        options: Optional[dict] = None,
    ) -> None:
        self.failure = failure
        self.trace: List[TraceEntry] = list(trace)
        self._token = token  # or a function that makes it, on first use
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
    def token(self) -> str:
        """The replay token (``R1.<fingerprint>.<runs>``)."""
        token = self._token
        if not isinstance(token, str):
            token = self._token = token()
        return token

    @token.setter
    def token(self, value: str) -> None:
        self._token = value

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_token"] = self.token
        return state

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
