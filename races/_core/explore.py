"""``explore`` and ``check``: many controlled runs under one strategy.

Each run is an ordinary :func:`races.run` with a per-run strategy object;
the exploration keeps whatever the strategy carries between runs (the DFS
tree).  The first failure is shrunk to the fewest preemptions (see
:mod:`races._core.shrink`) and returned with the token of the shrunk run.

Strategies: ``dfs`` (exhaustive, with partial-order reduction and an optional
preemption bound), ``random`` (run ``i`` uses ``random.Random(seed + i)``),
``pct`` (probabilistic concurrency testing with depth ``depth``),
``round_robin`` (one run that switches task at every step) and ``replay``
(one run of ``token=``).

Sharding: ``shard=(i, n)`` explores part ``i`` of ``n`` disjoint parts whose
union is the whole.  ``random`` and ``pct`` take run indices ``i, i+n, ...``
below ``max_schedules``; ``dfs`` splits the subtrees of the first decision
with more than one choice (its choice number modulo ``n``), exploring every
choice at that decision (no reduction there) so that the parts do not depend
on each other; every shard makes the first run to find that decision, but
only the shard that owns it counts and reports it.
"""
from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

from ..strategies.base import Strategy
from ..strategies.choices import Recorder
from ..strategies.dfs import DFSExplorer
from ..strategies.nonpreemptive import NonPreemptive
from ..strategies.pct import PCT
from ..strategies.random_walk import RandomWalk
from ..strategies.replay import Replay
from ..strategies.round_robin import RoundRobin
from . import token as token_mod
from .line_trace import GRANULARITIES, LineTraced, check_granularity, line_tasks
from .process_transport import deferred_exits
from .result import Result
from .runner import normalize_tasks, run, session
from .shrink import shrink as shrink_run

STRATEGIES = ("dfs", "random", "pct", "round_robin", "replay")


class ScheduleFailure(AssertionError):
    """Raised by :func:`check`: some schedule fails.  The message is the report."""

    def __init__(self, result: Result) -> None:
        super().__init__(result.report())
        self.result = result


def _seed_int(seed: Any) -> int:
    if isinstance(seed, int):
        return seed
    return zlib.crc32(str(seed).encode("utf-8"))


def _check_shard(shard: Any) -> tuple[int, int] | None:
    if shard is None:
        return None
    try:
        index, count = shard
        index, count = int(index), int(count)
    except (TypeError, ValueError):
        raise ValueError(f"shard must be a pair (index, count), not {shard!r}") from None
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard {shard!r} is out of range: use (i, n) with 0 <= i < n")
    return index, count


def explore(
    setup: Callable[[], Any],
    tasks: Any,
    invariant: Callable[[Any], Any] | None = None,
    strategy: str = "dfs",
    max_schedules: int = 1000,
    preemption_bound: int | None = None,
    seed: Any = 0,
    backend: str = "thread",
    stop_on_first: bool = True,
    shard: Any = None,
    *,
    points: str = "dependent",
    reduction: bool = True,
    depth: int = 3,
    steps: int | None = None,
    token: str | None = None,
    shrink: bool = True,
    granularity: str = "step",
    on_result: Callable[[Result], Any] | None = None,
    **run_options: Any,
) -> Result:
    """Run many schedules of ``tasks``; return the first failure (shrunk) or the
    last passing run, with ``schedules`` (how many ran) and ``exhaustive``
    (dfs: every schedule within the bound was covered).

    ``points``, ``reduction``: see :mod:`races.strategies.dfs`.  ``depth``,
    ``steps``: PCT's bug depth and step-count estimate (default: the length
    of the default-order run).  ``on_result`` is called with every counted
    run's Result.  ``granularity="line"`` makes every line of the tasks' own
    code a sync point (see :class:`LineTraced`; replay such a token with
    ``explore(..., strategy="replay", token=..., granularity="line")``).
    ``preemption_bound``, ``points`` and ``reduction`` apply to
    dfs only.  Other keyword arguments go to every :func:`races.run`.
    """
    if not isinstance(strategy, str) or strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; the strategies are: {', '.join(STRATEGIES)}")
    if not isinstance(max_schedules, int) or max_schedules < 1:
        raise ValueError(f"max_schedules must be a positive int, not {max_schedules!r}")
    shard_pair = _check_shard(shard)
    if strategy == "replay" and not token:
        raise ValueError("strategy='replay' needs token='R1....'")
    check_granularity(granularity)
    names, _ = normalize_tasks(tasks)
    options = dict(run_options, backend=backend, seed=seed, granularity=granularity)

    def run_once(strat: Strategy) -> Result:
        return run(setup, tasks, invariant, strategy=strat, **options)

    base_seed = _seed_int(seed)
    dfs: DFSExplorer | None = None
    if strategy == "dfs":
        dfs = DFSExplorer(reduction, points, preemption_bound, shard_pair)
    elif points not in ("dependent", "independent"):
        raise ValueError(f"points must be 'dependent' or 'independent', not {points!r}")

    schedules = 0
    failures = 0
    exhausted = False
    first_failure: tuple[Result, Recorder] | None = None
    last: Result | None = None

    def runs():  # yields (strategy, counted) until the budget or the space ends
        nonlocal exhausted
        if strategy == "dfs":
            assert dfs is not None
            while True:
                nxt = dfs.next_run()
                if nxt is None:
                    exhausted = True
                    return
                yield nxt, True  # the first run's ownership is known after it ran
        elif strategy in ("random", "pct"):
            index, count = shard_pair or (0, 1)
            pct_steps = steps
            if strategy == "pct" and pct_steps is None:
                probe = Recorder(NonPreemptive())
                yield probe, False
                pct_steps = max(len(probe.decisions), 1)
            for r in range(index, max_schedules, count):
                if strategy == "random":
                    yield RandomWalk(base_seed + r), True
                else:
                    yield PCT(base_seed + r, depth, pct_steps, names), True
        elif strategy == "round_robin":
            if shard_pair is None or shard_pair[0] == 0:
                yield RoundRobin(names), True
        else:
            if shard_pair is None or shard_pair[0] == 0:
                choices, _ = token_mod.decode(token)  # type: ignore[arg-type]
                yield Replay(choices, names), True

    # thread backend: the patches and the pinning stay in place for every run (and the shrinking);
    # process backend: a run's ended task processes exit while the next run goes on
    exit_notes: list[str] = []
    with session(backend, run_options.get("patch", True)), deferred_exits(exit_notes):
        for strat, counted in runs():
            if counted and schedules >= max_schedules:
                break
            recorder = strat if isinstance(strat, Recorder) else Recorder(strat)
            result = run_once(recorder)
            if dfs is not None:
                dfs.record(strat)  # type: ignore[arg-type]
                if strat.prefix == []:  # type: ignore[attr-defined]
                    counted = dfs.root_owned()
            if not counted and strategy == "pct" and result.failure is not None and (
                shard_pair is None or shard_pair[0] == 0
            ):
                counted = True  # PCT's measuring run (default order) failed: that is a finding
            if not counted:
                continue
            schedules += 1
            last = result
            if on_result is not None:
                on_result(result)
            if result.failure is not None:
                failures += 1
                if first_failure is None:
                    first_failure = (result, recorder)
                if stop_on_first:
                    break

        if first_failure is not None and shrink:
            shrunk, shrunk_recorder, _ = shrink_run(run_once, *first_failure)
            first_failure = (shrunk, shrunk_recorder)

    if first_failure is not None:
        final, recorder = first_failure
        final.exhaustive = exhausted and strategy == "dfs"  # stop_on_first=False ran it all
        final.preemptions = recorder.preemptions()  # type: ignore[attr-defined]
    elif last is not None:
        final = last
        final.exhaustive = exhausted and strategy == "dfs"
    else:  # a shard with nothing to run
        final = Result(None, [], token_mod.encode([], token_mod.fingerprint(names, [])), names,
                       options={"backend": backend, "seed": seed})
        final.exhaustive = exhausted and strategy == "dfs"
    final.schedules = schedules
    final.notes.extend(exit_notes)
    # dfs: runs that ended in a sleep-set block (equivalent to a run already made)
    final.redundant = dfs.redundant if dfs is not None else 0  # type: ignore[attr-defined]
    final.failures = failures  # type: ignore[attr-defined]
    final.options["strategy"] = strategy
    return final


def check(setup: Callable[[], Any], tasks: Any, invariant: Callable[[Any], Any] | None = None,
          *args: Any, **kwargs: Any) -> Result:
    """:func:`explore`, raising :class:`ScheduleFailure` (an AssertionError whose
    message is the report) when a schedule fails."""
    result = explore(setup, tasks, invariant, *args, **kwargs)
    if result.failure is not None:
        raise ScheduleFailure(result)
    return result


__all__ = ["GRANULARITIES", "STRATEGIES", "LineTraced", "ScheduleFailure", "check", "explore", "line_tasks"]
