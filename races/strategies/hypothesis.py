"""``schedules()``: a Hypothesis strategy of :class:`ChoiceSchedule` values.

::

    @given(schedule=races.strategies.schedules())
    def test_counter(schedule):
        result = races.run(setup, tasks, invariant, schedule=schedule)
        assert not result.failed, result.report()

Every value is a list of preemption offsets, drawn in full before the run
(the task threads never draw): ``0`` keeps the default order, ``k`` runs the
k-th other enabled task.  Hypothesis shrinks lists towards fewer and smaller
elements, that is towards fewer preemptions, and prints the value as
``races.strategies.ChoiceSchedule([...])``, ready for ``@example``.
Hypothesis is imported only when ``schedules()`` is called.
"""
from __future__ import annotations

from typing import Any

from .choices import ChoiceSchedule


def schedules(max_steps: int = 50, max_offset: int = 3) -> Any:
    """Offsets for the first ``max_steps`` decisions, each in ``0..max_offset``."""
    try:
        from hypothesis import strategies as st
    except ImportError as exc:  # pragma: no cover
        raise ImportError("races.strategies.schedules() needs hypothesis: pip install hypothesis") from exc
    if max_steps < 0 or max_offset < 0:
        raise ValueError("max_steps and max_offset must be >= 0")
    return st.lists(st.integers(0, max_offset), max_size=max_steps).map(ChoiceSchedule)
