"""Round robin: after every step, switch to the next enabled task in task order.

The opposite of :class:`NonPreemptive`: it preempts at every step it can, so
one run interleaves the tasks as finely as possible.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from .._core.step import Step
from .base import Strategy


class RoundRobin(Strategy):
    def __init__(self, task_names: Sequence[str] = ()) -> None:
        self.order: list[str] = list(task_names)

    def choose(
        self, enabled: Sequence[str], current: str | None, pending: Mapping[str, Step] | None = None
    ) -> str:
        for name in enabled:
            if name not in self.order:
                self.order.append(name)
        if current is None or current not in self.order:
            return enabled[0]
        start = self.order.index(current)
        n = len(self.order)
        for k in range(1, n + 1):
            name = self.order[(start + k) % n]
            if name in enabled:
                return name
        return enabled[0]
