"""The default order: keep running the current task while it can run; when it
ends or blocks, run the first enabled task in declaration order.

This is the order a forced schedule continues in once its list runs out, and
the order of a run with no schedule at all.  It never preempts, so an
exploration's "no preemption" choice is exactly this.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from .._core.step import Step
from .base import Strategy


class NonPreemptive(Strategy):
    def choose(
        self, enabled: Sequence[str], current: str | None, pending: Mapping[str, Step] | None = None
    ) -> str:
        if current is not None and current in enabled:
            return current
        return enabled[0]
