"""The interface every strategy implements."""
from __future__ import annotations

from typing import Optional, Sequence


class Strategy:
    """Pick the next task; hear how the run ended."""

    def choose(self, enabled: Sequence[str], current: Optional[str]) -> str:
        raise NotImplementedError

    def finished(self, failed: bool) -> None:
        """Called once when the run ends."""
