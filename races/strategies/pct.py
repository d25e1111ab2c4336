"""PCT, probabilistic concurrency testing (Burckhardt, Kothari, Musuvathi,
Nagarakatte, ASPLOS 2010).

Every task gets a random distinct priority, all at least ``depth``; the
highest-priority enabled task runs.  ``depth - 1`` change points are drawn
uniformly among the first ``steps`` steps; at the i-th change point the task
about to run drops to priority ``depth - 1 - i``, below every initial one.  A
bug of depth ``d`` among ``n`` tasks and ``k`` steps is found by one run with
probability at least ``1 / (n * k**(d-1))``.
"""
from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

from .._core.step import Step
from .base import Strategy


class PCT(Strategy):
    def __init__(self, seed: int = 0, depth: int = 3, steps: int = 100, tasks: Sequence[str] = ()) -> None:
        if depth < 1:
            raise ValueError(f"pct depth must be at least 1, not {depth!r}")
        self.rng = random.Random(seed)
        self.depth = depth
        self.steps = max(int(steps), 1)
        self.priority: dict[str, int] = {}
        self._fresh: list[int] = []
        names = list(tasks)
        if names:
            self._assign(names)
        population = range(1, self.steps + 1)
        picks = self.rng.sample(population, min(depth - 1, self.steps))
        # step number -> the low priority given at that change point
        self.change_points = {step: depth - 1 - i for i, step in enumerate(sorted(picks))}
        self.step = 0

    def _assign(self, names: Sequence[str]) -> None:
        new = [n for n in names if n not in self.priority]
        if not new:
            return
        base = self.depth + len(self.priority)
        values = list(range(base, base + len(new)))
        self.rng.shuffle(values)
        for name, value in zip(new, values):
            self.priority[name] = value

    def choose(
        self, enabled: Sequence[str], current: str | None, pending: Mapping[str, Step] | None = None
    ) -> str:
        self._assign(enabled)
        self.step += 1
        best = max(enabled, key=lambda n: self.priority[n])
        low = self.change_points.get(self.step)
        if low is not None:
            self.priority[best] = low
            best = max(enabled, key=lambda n: self.priority[n])
        return best

    def choose_value(self, options: Sequence[str]) -> int:
        """Answers are not priorities: uniformly random, from the same seed."""
        return self.rng.randrange(len(options))
