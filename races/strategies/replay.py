"""Replay a recorded list of choices (task indices); refuse to diverge."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from .._core.errors import ReplayError
from .._core.step import Step
from .base import Strategy


class Replay(Strategy):
    def __init__(self, choices: list[int], task_names: Sequence[str]) -> None:
        self.choices = choices
        self.task_names = list(task_names)
        self.position = 0

    def choose(
        self, enabled: Sequence[str], current: str | None, pending: Mapping[str, Step] | None = None
    ) -> str:
        if self.position >= len(self.choices):
            raise ReplayError(
                f"the token records {len(self.choices)} choices but the run needs more: "
                "the tasks or their sync points have changed since it was recorded"
            )
        index = self.choices[self.position]
        self.position += 1
        name = self.task_names[index] if index < len(self.task_names) else f"#{index}"
        if name not in enabled:
            raise ReplayError(
                f"choice {self.position} of the token runs task {name!r}, which cannot run now "
                f"(runnable: {', '.join(enabled)}): the tasks or their sync points have changed "
                "since the token was recorded"
            )
        return name
