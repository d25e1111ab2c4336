"""Uniformly random choice among the enabled tasks, from a seeded generator."""
from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

from .._core.step import Step
from .base import Strategy


class RandomWalk(Strategy):
    def __init__(self, seed: int = 0) -> None:
        self.rng = random.Random(seed)

    def choose(
        self, enabled: Sequence[str], current: str | None, pending: Mapping[str, Step] | None = None
    ) -> str:
        return enabled[self.rng.randrange(len(enabled))]

    def choose_value(self, options: Sequence[str]) -> int:
        return self.rng.randrange(len(options))
