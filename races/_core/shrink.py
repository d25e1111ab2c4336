"""Shrink a failing schedule to fewer preemptions.

A run is described by its *deviations*: the decisions where it did not take
the default order, each anchored to the progress of the task it switched
away from (see :class:`races.strategies.choices.Anchored`).  The shrinker
drops one deviation, or two consecutive ones (a switch away and the switch
back), and replays the rest in the default order elsewhere; a trial is kept
when it fails with the same kind of failure and needs fewer preemptions (or
as many and fewer deviations, or fewer steps).  A model's stale answer (see
:meth:`races.strategies.base.Strategy.choose_value`) counts as a deviation:
the trials keep the run's answers, and also try each one back at the
current state.  It stops when no such drop helps.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from ..strategies.choices import Anchored, Recorder
from .result import Result


def _measure(recorder: Recorder) -> tuple[int, int, int]:
    deviations = len(recorder.deviations()) + len(recorder.answers())
    return (recorder.preemptions(), deviations, len(recorder.decisions))


def shrink(
    run_once: Callable[[Any], Result],
    result: Result,
    recorder: Recorder,
    max_runs: int = 500,
) -> tuple[Result, Recorder, int]:
    """Return ``(shortest failing result, its recorder, runs spent)``.

    ``run_once(strategy)`` runs the tasks once under ``strategy``.
    """
    assert result.failure is not None
    kind = result.failure.kind
    best, best_rec = result, recorder
    runs = 0
    improved = True
    while improved and runs < max_runs:
        improved = False
        deviations = best_rec.anchored()
        answers = best_rec.answers()
        keys = list(deviations)
        drops: list[tuple[list, Any]] = [([k], None) for k in keys]
        drops += [([a, b], None) for a, b in itertools.pairwise(keys)]
        drops += [([], k) for k in answers]
        for drop, answer in drops:
            if runs >= max_runs:
                break
            trial = {k: v for k, v in deviations.items() if k not in drop}
            rec = Recorder(Anchored(trial, {k: v for k, v in answers.items() if k != answer}))
            outcome = run_once(rec)
            runs += 1
            if outcome.failure is not None and outcome.failure.kind == kind and _measure(rec) < _measure(best_rec):
                best, best_rec = outcome, rec
                improved = True
                break
    return best, best_rec, runs
