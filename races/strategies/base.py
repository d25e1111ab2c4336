"""The interface every strategy implements."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from .._core.step import Step


class Strategy:
    """Pick the next task; hear how the run ended.

    ``enabled`` are the names of the tasks that can run (in task order),
    ``current`` the task that ran last (None before the first step) and
    ``pending`` maps every live task (enabled or blocked) to the :class:`Step`
    it stands at.
    """

    def choose(
        self, enabled: Sequence[str], current: str | None, pending: Mapping[str, Step] | None = None
    ) -> str:
        raise NotImplementedError

    def finished(self, failed: bool) -> None:
        """Called once when the run ends."""
