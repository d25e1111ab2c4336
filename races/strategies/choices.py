"""Schedules as choices relative to the default order.

At every decision the *default* is the task the non-preemptive order would
run: the current task when it can still run, else the first enabled task.
Two encodings build on it:

* :class:`ChoiceSchedule`: a list of small ints, one per decision; ``0`` is
  the default, ``k`` the k-th other enabled task counting on from the
  default in task order (modulo the number of enabled tasks), so every list
  is valid and shrinking towards zeros removes preemptions.  ``races.run``
  accepts one as its ``schedule``; its ``repr`` can be pasted into an
  ``@example``.
* a *deviation map* ``{decision index: task name}``, which
  :class:`Directed` follows (the default elsewhere), or anchored to the
  progress of the task switched away from, ``{(task, moves made): task}``,
  which :class:`Anchored` follows: the form the shrinker drops preemptions
  from.

:class:`Recorder` wraps any strategy and keeps, per decision, what was
enabled, which task was current and which was chosen.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

from .._core.step import Step
from .base import Strategy


def default_choice(enabled: Sequence[str], current: str | None) -> str:
    """The non-preemptive order's pick."""
    if current is not None and current in enabled:
        return current
    return enabled[0]


def is_preemption(enabled: Sequence[str], current: str | None, chosen: str) -> bool:
    """True when ``chosen`` switches away from a current task that could go on."""
    return current is not None and current in enabled and chosen != current


class ChoiceSchedule(list):
    """A schedule as preemption offsets (see the module doc).  A list of ints."""

    def __init__(self, offsets: Sequence[int] = ()) -> None:
        super().__init__(int(o) for o in offsets)
        for o in self:
            if o < 0:
                raise ValueError(f"a ChoiceSchedule holds non-negative ints, not {o!r}")

    def __repr__(self) -> str:
        # trailing zeros are the default order: leave them out
        items = list(self)
        while items and items[-1] == 0:
            items.pop()
        return f"races.strategies.ChoiceSchedule({items!r})"

    def strategy(self) -> Choices:
        return Choices(self)


class Choices(Strategy):
    """Follow a :class:`ChoiceSchedule`; the default order once it runs out."""

    def __init__(self, offsets: Sequence[int]) -> None:
        self.offsets = list(offsets)
        self.position = 0

    def choose(
        self, enabled: Sequence[str], current: str | None, pending: Mapping[str, Step] | None = None
    ) -> str:
        offset = self.offsets[self.position] if self.position < len(self.offsets) else 0
        self.position += 1
        first = enabled.index(default_choice(enabled, current))
        return enabled[(first + offset) % len(enabled)]

    def choose_value(self, options: Sequence[str]) -> int:
        """A model's answer takes the next int too: ``0`` the current state."""
        offset = self.offsets[self.position] if self.position < len(self.offsets) else 0
        self.position += 1
        return offset % len(options)


class _Answers:
    """Answers to models' questions by their order in the run (``0`` elsewhere)."""

    def __init__(self, answers: Mapping[int, int] | None) -> None:
        self.answers = dict(answers or {})
        self.asked = 0

    def choose_value(self, options: Sequence[str]) -> int:
        k = self.answers.get(self.asked, 0)
        self.asked += 1
        return k if k < len(options) else 0


class Directed(_Answers, Strategy):
    """Take ``deviations[i]`` at decision ``i`` when it can run; else the default.
    ``answers``: the model answers to give, by their order in the run."""

    def __init__(self, deviations: Mapping[int, str], answers: Mapping[int, int] | None = None) -> None:
        super().__init__(answers)
        self.deviations = dict(deviations)
        self.position = 0

    def choose(
        self, enabled: Sequence[str], current: str | None, pending: Mapping[str, Step] | None = None
    ) -> str:
        want = self.deviations.get(self.position)
        self.position += 1
        if want is not None and want in enabled:
            return want
        return default_choice(enabled, current)


class Anchored(_Answers, Strategy):
    """Like :class:`Directed`, but each deviation is anchored to the progress of
    the task it switches away from: ``{(current, moves current has made): task}``
    (``current`` is ``""`` before the first move).  Dropping one deviation then
    leaves the others where they were relative to their tasks."""

    def __init__(self, deviations: Mapping[tuple[str, int], str], answers: Mapping[int, int] | None = None) -> None:
        super().__init__(answers)
        self.deviations = dict(deviations)
        self.moves: dict[str, int] = {}

    def choose(
        self, enabled: Sequence[str], current: str | None, pending: Mapping[str, Step] | None = None
    ) -> str:
        key = (current or "", self.moves.get(current, 0) if current is not None else 0)
        want = self.deviations.get(key)
        chosen = want if want is not None and want in enabled else default_choice(enabled, current)
        self.moves[chosen] = self.moves.get(chosen, 0) + 1
        return chosen


class Decision(NamedTuple):
    enabled: tuple
    current: str | None
    chosen: str
    step: Step | None


_new_tuple = tuple.__new__  # a Decision without its Python-level __new__: one per decision


class Recorder(Strategy):
    """Wrap a strategy and remember every decision it made."""

    def __init__(self, inner: Strategy) -> None:
        self.inner = inner
        self.decisions: list[Decision] = []
        self.values: list[int] = []  # the models' answers, in order
        self.failed = False

    def choose(
        self, enabled: Sequence[str], current: str | None, pending: Mapping[str, Step] | None = None
    ) -> str:
        chosen = self.inner.choose(enabled, current, pending)
        step = pending.get(chosen) if pending is not None else None
        self.decisions.append(_new_tuple(Decision, (tuple(enabled), current, chosen, step)))
        return chosen

    def choose_value(self, options: Sequence[str]) -> int:
        k = self.inner.choose_value(options)
        self.values.append(k)
        return k

    def finished(self, failed: bool) -> None:
        self.failed = failed
        self.inner.finished(failed)

    def answers(self) -> dict[int, int]:
        """The models' answers that were not the default (``0``), by order."""
        return {i: k for i, k in enumerate(self.values) if k}

    def deviations(self) -> dict[int, str]:
        """The decisions that differ from the default order."""
        return {
            i: d.chosen for i, d in enumerate(self.decisions) if d.chosen != default_choice(d.enabled, d.current)
        }

    def anchored(self) -> dict[tuple[str, int], str]:
        """The deviations keyed as :class:`Anchored` takes them."""
        out: dict[tuple[str, int], str] = {}
        moves: dict[str, int] = {}
        for d in self.decisions:
            key = (d.current or "", moves.get(d.current, 0) if d.current is not None else 0)
            if d.chosen != default_choice(d.enabled, d.current):
                out[key] = d.chosen
            moves[d.chosen] = moves.get(d.chosen, 0) + 1
        return out

    def preemptions(self) -> int:
        return sum(1 for d in self.decisions if is_preemption(d.enabled, d.current, d.chosen))
