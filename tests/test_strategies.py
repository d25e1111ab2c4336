"""The strategies on their own, and the Hypothesis schedule strategy."""
from __future__ import annotations

import pytest
from hypothesis import given, settings

import races
from races.strategies import (
    PCT,
    Choices,
    ChoiceSchedule,
    Directed,
    NonPreemptive,
    RandomWalk,
    Recorder,
    Replay,
    RoundRobin,
    dependent,
)
from races.strategies.choices import default_choice, is_preemption
from tests import sample_tasks as st

NAMES = ["a", "b", "c"]


def test_every_strategy_takes_pending():
    step = races.Step("point", "p")
    pending = {n: step for n in NAMES}
    for strategy in (NonPreemptive(), RandomWalk(1), PCT(1, 3, 10), RoundRobin(NAMES), Choices([1]),
                     Directed({0: "c"}), Replay([2, 0], NAMES)):
        assert strategy.choose(NAMES, None, pending) in NAMES
        assert strategy.choose(NAMES, "a") in NAMES  # pending is optional


def test_default_choice_and_preemption():
    assert default_choice(["a", "b"], "b") == "b"
    assert default_choice(["a", "b"], "c") == "a"
    assert default_choice(["b"], None) == "b"
    assert is_preemption(["a", "b"], "a", "b")
    assert not is_preemption(["a", "b"], "a", "a")
    assert not is_preemption(["b"], "a", "b")  # a blocked or finished: a switch, not a preemption
    assert not is_preemption(["a", "b"], None, "b")


def test_choices_offsets_count_from_the_default():
    s = Choices([0, 1, 2, 5])
    assert s.choose(NAMES, "b") == "b"
    assert s.choose(NAMES, "b") == "c"
    assert s.choose(NAMES, "b") == "a"
    assert s.choose(NAMES, "b") == "a"  # 5 % 3 == 2
    assert s.choose(NAMES, "b") == "b"  # past the list: default


def test_round_robin_switches_every_step():
    s = RoundRobin(NAMES)
    assert [s.choose(NAMES, cur) for cur in (None, "a", "b", "c")] == ["a", "b", "c", "a"]
    assert s.choose(["a", "c"], "a") == "c"


def test_random_and_pct_are_seeded():
    def picks(strategy):
        out, cur = [], None
        for _ in range(30):
            cur = strategy.choose(NAMES, cur)
            out.append(cur)
        return out

    assert picks(RandomWalk(7)) == picks(RandomWalk(7))
    assert picks(PCT(7, 3, 30)) == picks(PCT(7, 3, 30))
    assert any(picks(RandomWalk(s)) != picks(RandomWalk(7)) for s in range(3))


def test_pct_runs_highest_priority_until_a_change_point():
    s = PCT(3, depth=1, steps=10, tasks=NAMES)  # depth 1: no change points, one task runs alone
    first = s.choose(NAMES, None)
    assert all(s.choose(NAMES, first) == first for _ in range(10))
    s = PCT(3, depth=2, steps=5, tasks=NAMES)
    (point,) = s.change_points
    seq = [s.choose(NAMES, None) for _ in range(5)]
    assert seq[: point - 1] == [seq[0]] * (point - 1)
    assert seq[point - 1] != seq[0]  # the top task dropped below every other


def test_dependence():
    lock = races.Step("lock", "acquire", "L1")
    other = races.Step("lock", "acquire", "L2")
    point = races.Step("point", "p")
    # the default: the code after any step may touch anything, so all steps conflict
    assert dependent(lock, other) and dependent(lock, point) and dependent(point, point)
    # "independent": only steps on the same controlled object conflict
    assert dependent(lock, lock._replace(name="release"), "independent")
    assert not dependent(lock, other, "independent")
    assert not dependent(lock, point, "independent")
    assert not dependent(point, point, "independent")


def test_recorder_keeps_decisions_and_deviations():
    rec = Recorder(Choices([0, 1]))
    result = races.run(st.counter_setup, [st.increment, st.increment], st.both_counted, strategy=rec)
    assert result.failed
    assert rec.preemptions() == 1
    assert rec.deviations() == {1: "t1"}
    again = races.run(st.counter_setup, [st.increment, st.increment], st.both_counted,
                      strategy=Directed(rec.deviations()))
    assert again.trace == result.trace


def test_choice_schedule_is_a_run_schedule():
    sched = ChoiceSchedule([0, 1, 0, 0])
    assert isinstance(sched, list)
    assert repr(sched) == "races.strategies.ChoiceSchedule([0, 1])"
    result = races.run(st.counter_setup, [st.increment, st.increment], st.both_counted, schedule=sched)
    assert result.failure.kind == "invariant"
    assert races.run(st.counter_setup, [st.increment, st.increment], st.both_counted,
                     schedule=ChoiceSchedule([])).failure is None
    with pytest.raises(ValueError):
        ChoiceSchedule([-1])


def _run_choice(schedule):
    return races.run(st.counter_setup, [st.increment, st.increment], st.both_counted, schedule=schedule)


def test_hypothesis_finds_and_shrinks_to_one_preemption():
    seen = []

    @settings(max_examples=200, database=None, derandomize=True, deadline=None)
    @given(schedule=races.strategies.schedules(max_steps=10))
    def lost_update(schedule):
        result = _run_choice(schedule)
        if result.failed:
            seen.append(schedule)
        assert not result.failed, result.report()

    with pytest.raises(AssertionError) as info:
        lost_update()
    assert "lost update" in str(info.value)
    shrunk = seen[-1]  # Hypothesis replays the minimal example last
    rec = Recorder(Choices(shrunk))
    result = races.run(st.counter_setup, [st.increment, st.increment], st.both_counted, strategy=rec)
    assert result.failure.kind == "invariant"
    assert rec.preemptions() == 1
    assert repr(shrunk) == "races.strategies.ChoiceSchedule([0, 1])"
    again = eval(repr(shrunk), {"races": races})
    assert isinstance(again, ChoiceSchedule)
    rerun = _run_choice(again)
    assert rerun.failure == result.failure and rerun.trace == result.trace


def test_schedules_draws_lists_of_small_ints():
    @settings(max_examples=30, database=None, derandomize=True)
    @given(schedule=races.strategies.schedules(max_steps=5, max_offset=2))
    def shape(schedule):
        assert isinstance(schedule, ChoiceSchedule)
        assert len(schedule) <= 5 and all(0 <= o <= 2 for o in schedule)

    shape()
