"""Replay a recorded list of choices; refuse to diverge.

The list holds a task index (``>= 0``) per decision and, in the order they
were made, a model's answer ``k`` as ``-(k + 1)`` (see
:meth:`races.strategies.base.Strategy.choose_value`)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from .._core.errors import ReplayError
from .._core.step import Step
from .base import Strategy

_CHANGED = "the tasks or their sync points have changed since the token was recorded"


class Replay(Strategy):
    def __init__(self, choices: list[int], task_names: Sequence[str]) -> None:
        self.choices = choices
        self.task_names = list(task_names)
        self.position = 0

    def _next(self) -> int:
        if self.position >= len(self.choices):
            raise ReplayError(
                f"the token records {len(self.choices)} choices but the run needs more: "
                "the tasks or their sync points have changed since it was recorded"
            )
        entry = self.choices[self.position]
        self.position += 1
        return entry

    def choose(
        self, enabled: Sequence[str], current: str | None, pending: Mapping[str, Step] | None = None
    ) -> str:
        index = self._next()
        if index < 0:
            raise ReplayError(f"choice {self.position} of the token is an answer, but the run picks a task there: "
                              + _CHANGED)
        name = self.task_names[index] if index < len(self.task_names) else f"#{index}"
        if name not in enabled:
            raise ReplayError(
                f"choice {self.position} of the token runs task {name!r}, which cannot run now "
                f"(runnable: {', '.join(enabled)}): " + _CHANGED
            )
        return name

    def choose_value(self, options: Sequence[str]) -> int:
        entry = self._next()
        if entry >= 0 or -entry - 1 >= len(options):
            raise ReplayError(f"choice {self.position} of the token does not answer the question the run asks "
                              f"there ({' / '.join(options)}): " + _CHANGED)
        return -entry - 1
