"""``sleep_scale`` for :func:`races.stress`: real sleeps, shortened by a factor.

Programs like the notes' ``time.sleep(3)`` demos take seconds a run for real,
too slow to stress many times (or in CI).  With ``sleep_scale=s`` a task's
``time.sleep(t)`` sleeps ``t * s`` for real: the relative lengths of the
sleeps stay, so the order they impose mostly stays too, and a fix whose
correctness leans on how long something sleeps fails, as it should.

Only the ``time.sleep`` attribute is replaced (a name bound with ``from time
import sleep`` before the run keeps the real function), for the length of
the stress campaign in the parent (thread backend) or of the task process.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def check_scale(scale: Any) -> float | None:
    """``scale`` as a float, or None for real time; a clear error otherwise."""
    if scale is None:
        return None
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0:
        raise ValueError(f"sleep_scale must be a positive number (e.g. 0.01), not {scale!r}")
    return float(scale)


@contextmanager
def scaled_sleep(scale: float | None) -> Iterator[None]:
    """While active, ``time.sleep(t)`` sleeps ``t * scale`` (nothing changes for None)."""
    if scale is None or scale == 1.0:
        yield
        return
    real = time.sleep

    def sleep(seconds: float) -> None:
        real(seconds * scale)

    sleep.__wrapped__ = real  # type: ignore[attr-defined]
    time.sleep = sleep  # type: ignore[assignment]
    try:
        yield
    finally:
        time.sleep = real
