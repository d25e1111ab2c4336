"""The interface every strategy implements."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from .._core.step import Step


class Strategy:
    """Pick the next task (and, now and then, a model's answer); hear how the run ended.

    ``enabled`` are the names of the tasks that can run (in task order),
    ``current`` the task that ran last (None before the first step) and
    ``pending`` maps every live task (enabled or blocked) to the :class:`Step`
    it stands at.
    """

    def choose(
        self, enabled: Sequence[str], current: str | None, pending: Mapping[str, Step] | None = None
    ) -> str:
        raise NotImplementedError

    def choose_value(self, options: Sequence[str]) -> int:
        """Pick one of a model's ``options`` for an answer that real code may get
        either way (a stale ``Queue.empty()``...).  ``0`` is the current state,
        the answer a run gives by default; the others are the stale ones."""
        return 0

    def finished(self, failed: bool) -> None:
        """Called once when the run ends."""
