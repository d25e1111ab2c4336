"""races.explore / races.check: strategies, reduction, bounds, shrinking, sharding."""
from __future__ import annotations

import itertools
from math import comb
from types import SimpleNamespace

import pytest

import races
import scenarios
import scenarios.manager_lost_update as mlu
import scenarios.ticket_oversell as ticket
from tests import sample_tasks as st


@pytest.fixture(autouse=True, scope="module")
def _stop_warm_services():
    """The scenarios use races.manager(): stop it so later leak checks see no children."""
    yield
    races.shutdown()


COUNTER = (st.counter_setup, [st.increment, st.increment], st.both_counted)
MANAGER = (st.manager_setup, [st.manager_increment, st.manager_increment], st.manager_both_counted)


def points_task(k):
    def task(state):
        for i in range(k):
            races.point(f"p{i}")

    return task


def chatty_increment(box):
    """A lost update padded with points, so random schedules preempt a lot."""
    for name in ("a", "b", "c"):
        races.point(name)
    value = box.n
    races.point("read")
    box.n = value + 1
    for name in ("d", "e", "f"):
        races.point(name)


def three_setup():
    return SimpleNamespace(data=races.manager().dict({"num": 3}), lock=races.Lock("l"))


def three_counted(state):
    num = state.data["num"]
    assert num == 0, f"num is {num} after 3 decrements from 3"


def tokens(**kwargs):
    seen = []
    result = races.explore(*kwargs.pop("scenario"), on_result=lambda r: seen.append(r.token), **kwargs)
    return seen, result


# -- the API ----------------------------------------------------------------------


def test_unknown_strategy_names_the_valid_ones():
    with pytest.raises(ValueError) as info:
        races.explore(*COUNTER, strategy="bfs")
    for name in ("dfs", "random", "pct", "round_robin", "replay"):
        assert name in str(info.value)


@pytest.mark.parametrize("bad", [(3, 3), (0, 0), "x", (1,)])
def test_bad_shard(bad):
    with pytest.raises(ValueError):
        races.explore(*COUNTER, shard=bad)


def test_check_raises_schedule_failure_with_the_report():
    with pytest.raises(races.ScheduleFailure) as info:
        races.check(*COUNTER)
    assert isinstance(info.value, AssertionError)
    assert str(info.value) == info.value.result.report()
    assert "lost update: n=1" in str(info.value)
    passing = races.check(st.counter_setup, [st.increment_locked] * 2, st.both_counted)
    assert not passing.failed and passing.exhaustive


# -- finding bugs without a schedule ----------------------------------------------------


@pytest.mark.parametrize("strategy", ["dfs", "pct", "random"])
def test_finds_lost_update(strategy):
    result = races.explore(*COUNTER, strategy=strategy, max_schedules=200)
    assert result.failure.kind == "invariant", result
    assert "lost update: n=1" in result.failure.message
    assert result.preemptions == 1
    assert 1 <= result.schedules <= 200


def test_round_robin_interleaves_finely():
    result = races.explore(*COUNTER, strategy="round_robin")
    assert result.failed and result.schedules == 1


def test_replay_strategy_runs_the_token():
    found = races.explore(*COUNTER)
    again = races.explore(*COUNTER, strategy="replay", token=found.token)
    assert again.trace == found.trace and again.schedules == 1


@pytest.mark.parametrize("strategy", ["dfs", "pct"])
@pytest.mark.parametrize("name", ["manager_lost_update", "ticket_oversell"])
def test_finds_scenario_bugs(name, strategy):
    scenario = scenarios.load(name)
    result = races.explore(scenario.setup, scenario.buggy, scenario.invariant, strategy=strategy,
                           backend="thread", teardown=scenario.teardown, max_schedules=500)
    assert result.failure is not None and result.failure.kind == scenario.expect, result
    assert result.preemptions == 1
    again = races.replay(result.token, scenario.setup, scenario.buggy, scenario.invariant,
                         teardown=scenario.teardown)
    assert again.trace == result.trace and again.failure == result.failure


@pytest.mark.parametrize("strategy", ["dfs", "pct"])
@pytest.mark.parametrize("name", scenarios.NAMES)
def test_finds_every_catalogue_bug_without_its_schedule(name, strategy):
    """Including lock_order_inversion (found through the blocked acquire's pending
    step) and lock_granularity (its race is on a file the harness cannot see, so
    only the sound default dependence finds it)."""
    scenario = scenarios.load(name)
    result = races.explore(scenario.setup, scenario.buggy, scenario.invariant, strategy=strategy,
                           backend="thread", teardown=scenario.teardown, max_schedules=500)
    assert result.failure is not None, result
    assert result.failure.kind in (scenario.expect, *OTHER_WAYS_TO_FAIL.get(name, ())), result


# Buggy variants with a second way to fail that a search may meet first (each
# scenario's story tells it).
OTHER_WAYS_TO_FAIL = {
    "empty_check_race": ("invariant",),  # both eaters see the dish still in the feeder: nobody eats
}


def test_fixed_manager_is_exhaustively_correct_within_two_preemptions():
    tasks = {f"p{i}": mlu.task_with_lock for i in range(3)}
    result = races.explore(three_setup, tasks, three_counted, preemption_bound=2, max_schedules=5000)
    assert not result.failed, result.report()
    assert result.exhaustive is True
    buggy = races.explore(three_setup, {f"p{i}": mlu.task_without_lock for i in range(3)}, three_counted,
                          preemption_bound=2)
    assert buggy.failure.kind == "invariant"


def test_fixed_ticket_is_exhaustively_correct_within_two_preemptions():
    tasks = {f"buyer{i}": t for i, t in enumerate(ticket.buyers(ticket.buyer_with_lock).values()) if i < 3}
    result = races.explore(ticket.setup, tasks, ticket.at_most_one_ticket_sold, teardown=ticket.teardown,
                           preemption_bound=2, max_schedules=5000)
    assert not result.failed, result.report()
    assert result.exhaustive is True


def test_preemption_bound_leaves_out_what_lies_beyond_it():
    # the lost update needs one preemption: bound 0 covers its space without finding it
    zero = races.explore(*COUNTER, preemption_bound=0)
    assert not zero.failed and zero.exhaustive
    one = races.explore(*COUNTER, preemption_bound=1)
    assert one.failed and one.preemptions == 1
    # each schedule once: the bounded spaces grow with the bound and stop at the full space
    sizes = [tokens(scenario=MANAGER, preemption_bound=b, stop_on_first=False, reduction=False)[0]
             for b in (0, 1, 2, 7)]
    for smaller, larger in itertools.pairwise(sizes):
        assert len(set(smaller)) == len(smaller)
        assert set(smaller) <= set(larger)
    assert next(len(s) for s in sizes) == 2  # t0 then t1, t1 then t0
    assert len(sizes[-1]) == comb(8, 4)  # 7 switches is the most two tasks of 4 moves make


def test_a_bound_does_not_make_ten_tasks_search_the_switch_free_orders_first():
    """Ten buyers have 10! switch-free orders, none of which oversells; ordering the
    search by preemptions first spent any budget on them (1,000 schedules, no bug).
    The bound only filters: a one-switch bug comes within a few dozen schedules."""
    scenario = scenarios.load("ticket_oversell")
    result = races.explore(scenario.setup, scenario.buggy, scenario.invariant, teardown=scenario.teardown,
                           preemption_bound=2, max_schedules=100)
    assert result.failure is not None and result.failure.kind == "invariant" and result.preemptions == 1
    assert result.schedules < 100


# -- partial-order reduction ------------------------------------------------------------


@pytest.mark.parametrize("k", [2, 3])
def test_independent_points_need_one_schedule(k):
    tasks = [points_task(k), points_task(k)]
    reduced = races.explore(st.none_setup, tasks, points="independent", stop_on_first=False)
    assert reduced.schedules == 1 and reduced.exhaustive
    # without reduction every interleaving runs: each task makes k + 1 moves (its start
    # and k points), so C(2(k+1), k+1): 20 = C(6, 3) for k = 2, 70 for k = 3
    plain = races.explore(st.none_setup, tasks, reduction=False, stop_on_first=False)
    assert plain.schedules == comb(2 * k + 2, k + 1) and plain.exhaustive
    assert comb(6, 3) == 20
    # points="dependent" (the default) treats every point as touching shared state
    dependent = races.explore(st.none_setup, tasks, stop_on_first=False)
    assert dependent.schedules == comb(2 * k + 2, k + 1)


def test_manager_lost_update_runs_each_distinct_ordering_once():
    """Each task makes four moves: start, data.__getitem__ (D), the point "read",
    data.__setitem__ (D).  Only the two D-moves of each task touch a shared object.

    points="independent": two schedules differ only in the order of the four
    D-moves, two from each task in program order: C(4, 2) = 6 orderings.  Four of
    them put both reads before a write (g0 g1 s0 s1, g0 g1 s1 s0, g1 g0 s0 s1,
    g1 g0 s1 s0) and lose an update; g0 s0 g1 s1 and g1 s1 g0 s0 pass.

    points="dependent" (the default): every two moves of different tasks are
    dependent, because the code after any sync point may touch shared state the
    harness cannot see, so every one of the C(8, 4) = 70 interleavings is its own
    class: 70 schedules, as without reduction, 60 of them losing the update.

    No reduction: all C(8, 4) = 70 interleavings of the eight moves.
    """
    independent = races.explore(*MANAGER, points="independent", stop_on_first=False)
    assert (independent.schedules, independent.failures, independent.exhaustive) == (6, 4, True)
    dependent = races.explore(*MANAGER, stop_on_first=False)
    assert (dependent.schedules, dependent.failures, dependent.exhaustive) == (70, 60, True)
    plain = races.explore(*MANAGER, reduction=False, stop_on_first=False)
    assert (plain.schedules, plain.failures) == (70, 60)


def test_reduction_counts_match_brute_force():
    """The 6 above, counted by enumerating interleavings and keeping one per class
    of the order of dependent pairs (moves on the same object: D)."""
    from itertools import combinations

    moves = [("start", "P"), ("get", "D"), ("read", "P"), ("set", "D")]
    classes = set()
    for positions in combinations(range(8), 4):
        seq, i, j = [], 0, 0
        for k in range(8):
            if k in positions:
                seq.append((0, i, moves[i][1]))
                i += 1
            else:
                seq.append((1, j, moves[j][1]))
                j += 1
        classes.add(frozenset(
            (a[:2], b[:2]) for x, a in enumerate(seq) for b in seq[x + 1:]
            if a[0] != b[0] and a[2] == b[2] == "D"
        ))
    assert len(classes) == 6


# -- determinism, shrinking, replay --------------------------------------------------


@pytest.mark.parametrize("strategy", ["random", "pct"])
def test_same_seed_same_schedules(strategy):
    tasks = [points_task(3), points_task(3), points_task(2)]
    first, _ = tokens(scenario=(st.none_setup, tasks, None), strategy=strategy, seed=5, max_schedules=15)
    again, _ = tokens(scenario=(st.none_setup, tasks, None), strategy=strategy, seed=5, max_schedules=15)
    other, _ = tokens(scenario=(st.none_setup, tasks, None), strategy=strategy, seed=6, max_schedules=15)
    assert first == again and len(first) == 15
    assert other != first


def test_shrinks_to_one_preemption_and_replays_exactly():
    tasks = [chatty_increment, chatty_increment]
    raw = races.explore(st.counter_setup, tasks, st.both_counted, strategy="random", seed=3, shrink=False)
    shrunk = races.explore(st.counter_setup, tasks, st.both_counted, strategy="random", seed=3)
    assert raw.failed and shrunk.failed and shrunk.failure.kind == raw.failure.kind == "invariant"
    assert raw.preemptions > 1
    assert shrunk.preemptions == 1
    assert len(shrunk.trace) <= len(raw.trace)
    for _ in range(20):
        again = races.replay(shrunk.token, st.counter_setup, tasks, st.both_counted)
        assert again.trace == shrunk.trace
        assert again.failure == shrunk.failure


def test_stop_on_first_false_counts_failures():
    result = races.explore(*COUNTER, stop_on_first=False)
    assert result.failed and result.exhaustive
    assert result.failures >= 1 and result.schedules > result.failures


# -- sharding -----------------------------------------------------------------


@pytest.mark.parametrize("options", [
    pytest.param({"strategy": "dfs", "reduction": False}, id="dfs-plain"),
    pytest.param({"strategy": "dfs"}, id="dfs-reduced"),
    pytest.param({"strategy": "dfs", "preemption_bound": 1}, id="dfs-bounded"),
    pytest.param({"strategy": "random", "max_schedules": 30}, id="random"),
    pytest.param({"strategy": "pct", "max_schedules": 30}, id="pct"),
])
def test_shards_partition_the_space(options):
    whole, result = tokens(scenario=MANAGER, stop_on_first=False, **options)
    parts = [tokens(scenario=MANAGER, stop_on_first=False, shard=(i, 3), **options) for i in range(3)]
    union = [t for seen, _ in parts for t in seen]
    if options["strategy"] == "dfs":
        assert len(set(whole)) == len(whole)  # dfs runs each schedule once
        assert all(part.exhaustive for _, part in parts) and result.exhaustive
        assert sorted(set(union)) == sorted(set(whole))
        assert len(union) == len(whole)  # disjoint
    else:
        assert sorted(union) == sorted(whole)
        index_sets = [set(range(i, 30, 3)) for i in range(3)]
        assert sum(len(s) for s in index_sets) == 30
    assert sum(part.schedules for _, part in parts) == result.schedules


def test_three_tasks_shard_by_the_first_choice():
    """With reduction the first decision's choices are not all needed (the starts
    are independent here), but a sharded search explores each of them so that the
    parts do not depend on each other: the union is the search with that decision
    unreduced, which is what shard=(0, 1) runs."""
    tasks = {f"p{i}": mlu.task_without_lock for i in range(3)}
    scenario = (three_setup, tasks, three_counted)
    whole, result = tokens(scenario=scenario, stop_on_first=False, points="independent", shard=(0, 1))
    parts = [tokens(scenario=scenario, stop_on_first=False, points="independent", shard=(i, 3))[0]
             for i in range(3)]
    assert all(parts)
    union = [t for p in parts for t in p]
    assert sorted(union) == sorted(whole)
    assert len(set(union)) == len(union)
    unsharded = races.explore(*scenario, stop_on_first=False, points="independent")
    assert unsharded.exhaustive and result.exhaustive
    assert unsharded.schedules <= result.schedules


def test_process_backend_explores_the_same_orderings():
    result = races.explore(*MANAGER, backend="process", start_method="forkserver", points="independent",
                           stop_on_first=False)
    assert (result.schedules, result.failures, result.exhaustive) == (6, 4, True)
    found = races.explore(*MANAGER, backend="process", start_method="forkserver")
    assert found.failure.kind == "invariant" and found.preemptions == 1
    again = races.replay(found.token, *MANAGER, backend="process", start_method="forkserver")
    assert again.trace == found.trace


# -- reduction keeps every outcome ------------------------------------------------


def list_setup():
    return SimpleNamespace(items=races.manager().list(), lock=races.Lock("L"), n=0)


def appender(name):
    def task(state):
        races.point("before")
        state.items.append(name)
        with state.lock:
            state.n += 1
            races.point("inside")
        state.items.append(name.upper())

    return task


def double_appender(name, twice=True):
    def task(state):
        state.items.append(name)
        if twice:
            state.items.append(name.upper())

    return task


def outcomes(tasks, **kwargs):
    seen = []

    def record(state):
        seen.append((tuple(state.items), state.n))

    result = races.explore(list_setup, tasks, record, stop_on_first=False, max_schedules=100_000, **kwargs)
    assert result.exhaustive
    return set(seen), result.schedules


@pytest.mark.parametrize("tasks", [
    pytest.param([appender("a"), appender("b")], id="2x7-moves"),
    pytest.param([double_appender("a"), double_appender("b", False), double_appender("c", False)],
                 id="3-tasks"),
])
def test_reduction_keeps_every_outcome(tasks):
    """Every final state reachable at all is reached with reduction on (the list's
    order records the order of every pair of dependent moves)."""
    plain, plain_runs = outcomes(tasks, reduction=False)
    for points in ("dependent", "independent"):
        reduced, reduced_runs = outcomes(tasks, points=points)
        assert reduced == plain
        # "dependent" treats every pair of moves as conflicting: nothing to prune
        assert reduced_runs < plain_runs if points == "independent" else reduced_runs <= plain_runs


# -- line granularity ---------------------------------------------------------


def plain_increment(box):
    value = box.n
    box.n = value + 1


def test_line_granularity_finds_a_race_between_plain_statements():
    tasks = [plain_increment, plain_increment]
    coarse = races.explore(st.counter_setup, tasks, st.both_counted)
    assert not coarse.failed and coarse.exhaustive  # no sync point between read and write
    fine = races.explore(st.counter_setup, tasks, st.both_counted, granularity="line")
    assert fine.failure.kind == "invariant" and fine.preemptions == 1
    lines = [e.name for e in fine.trace if e.kind == "point"]
    assert lines and all(name.startswith("test_explore.py@") for name in lines)
    again = races.explore(st.counter_setup, tasks, st.both_counted, granularity="line",
                          strategy="replay", token=fine.token)
    assert again.trace == fine.trace and again.failure == fine.failure
    locked = races.explore(st.counter_setup, [st.increment_locked] * 2, st.both_counted, granularity="line")
    assert not locked.failed and locked.exhaustive
    with pytest.raises(ValueError):
        races.explore(st.counter_setup, tasks, granularity="statement")
