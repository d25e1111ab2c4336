"""Virtual time: a number the controller moves forward; nothing ever waits on it."""
from __future__ import annotations


class VirtualClock:
    __slots__ = ("now",)

    def __init__(self) -> None:
        self.now = 0.0

    def advance_to(self, t: float) -> None:
        if t > self.now:
            self.now = t
