"""The stale view of a multiprocessing.Queue: right after a put, the item may
still sit in the feeder thread's buffer, so empty() says True and get_nowait()
raises queue.Empty.  A forced run answers from the current state; every
strategy can choose the stale answer, replay reproduces it, and the queues
without a feeder thread never give one."""
from __future__ import annotations

import multiprocessing
import queue

import pytest
from hypothesis import given, settings

import races
from races._core import token as token_mod
from races._core.errors import ReplayError
from races.strategies import ChoiceSchedule, schedules


def mp_queue_setup():
    return {"q": multiprocessing.Queue(), "log": []}


def put_then_empty(state):
    state["q"].put("item")
    state["log"].append(state["q"].empty())


def put_then_get_nowait(state):
    state["q"].put("item")
    try:
        state["log"].append(state["q"].get_nowait())
    except queue.Empty:
        state["log"].append("Empty")


def put_join_thread_then_empty(state):
    state["q"].put("item")
    state["q"].join_thread()
    state["log"].append(state["q"].empty())


def put_one(state):
    state["q"].put("item")


def check_empty(state):
    state["log"].append(state["q"].empty())


def qsize_after_put(state):
    state["q"].put("item")
    state["log"].append(state["q"].qsize())


def put_put_empty(state):
    state["q"].put(1)
    state["q"].put(2)
    state["log"].append(state["q"].empty())


def saw_no_stale_empty(state):
    assert True not in state["log"], f"empty() answered True: {state['log']}"


def answers(setup, tasks, **options):
    """Every distinct log an exhaustive dfs sees (thread backend), and the result."""
    seen = []
    logs = []

    def setup_and_keep():
        state = setup()
        logs.append(state["log"])
        return state

    result = races.explore(setup_and_keep, tasks, stop_on_first=False, **options)
    for log in logs:
        if log not in seen:
            seen.append(log)
    return seen, result


# -- the default and the choice ------------------------------------------------------


def test_a_forced_run_answers_from_the_current_state():
    for _ in range(3):
        state = {}

        def setup():
            state.update(mp_queue_setup())
            return state

        result = races.run(setup, [put_then_empty])
        assert result.failure is None and state["log"] == [False]


def test_exploration_also_answers_empty_from_the_feeder_s_stale_view():
    seen, result = answers(mp_queue_setup, [put_then_empty])
    assert sorted(map(tuple, seen)) == [(False,), (True,)]
    assert result.exhaustive and result.schedules == 2


def test_get_nowait_may_raise_empty_while_the_item_is_in_flight():
    seen, result = answers(mp_queue_setup, [put_then_get_nowait])
    assert sorted(map(tuple, seen)) == [("Empty",), ("item",)]


def test_the_stale_answer_is_found_reported_and_replayed():
    result = races.explore(mp_queue_setup, [put_then_empty], saw_no_stale_empty)
    assert result.failed and result.failure.kind == "invariant"
    text = result.report()
    assert "empty() is True (stale: the 1 item(s) put are still in the feeder thread's buffer" in text
    assert "~1" in result.token  # the answer is in the token
    for _ in range(20):
        again = races.replay(result.token, mp_queue_setup, [put_then_empty], saw_no_stale_empty)
        assert again.trace == result.trace and again.failure == result.failure


@pytest.mark.parametrize("strategy", ["random", "pct"])
def test_random_and_pct_choose_stale_answers_too(strategy):
    result = races.explore(mp_queue_setup, [put_then_empty], saw_no_stale_empty, strategy=strategy,
                           max_schedules=50)
    assert result.failed and result.failure.kind == "invariant"


def test_a_choice_schedule_answers_with_its_ints():
    # decisions: t0 start, t0 put, t0 empty -> then the answer takes the 4th int
    failing = races.run(mp_queue_setup, [put_then_empty], saw_no_stale_empty, schedule=ChoiceSchedule([0, 0, 0, 1]))
    assert failing.failure is not None and failing.failure.kind == "invariant"
    passing = races.run(mp_queue_setup, [put_then_empty], saw_no_stale_empty, schedule=ChoiceSchedule([0, 0, 0, 0]))
    assert passing.failure is None


@settings(max_examples=60, database=None, deadline=None)
@given(schedule=schedules(max_steps=6, max_offset=1))
def test_hypothesis_schedules_reach_the_stale_answer(schedule):
    result = races.run(mp_queue_setup, [put_then_empty], saw_no_stale_empty, schedule=schedule)
    stale = len(schedule) > 3 and schedule[3] % 2 == 1
    assert (result.failure is not None) == stale


def raise_if_stale(state):
    state["q"].put("item")
    if state["q"].empty():
        raise RuntimeError("empty() right after put")


def test_the_process_backend_has_the_stale_view_too():
    result = races.explore(mp_queue_setup, [raise_if_stale], backend="process", start_method="forkserver")
    assert result.failed and result.failure.kind == "exception", result.report()
    assert "empty() right after put" in result.failure.message
    assert result.schedules == 2


# -- when the view cannot be stale ---------------------------------------------------


def test_join_thread_flushes_the_feeder():
    seen, _ = answers(mp_queue_setup, [put_join_thread_then_empty])
    assert seen == [[False]]


def put_then_linger(state):
    state["q"].put("item")
    races.point("lingering")


class PutterFirstStale(races.strategies.Strategy):
    """Run ``putter`` until it cannot (or, with ``linger``, until it stands at
    'lingering'), then the others; answer every question stale."""

    def __init__(self, linger):
        self.linger = linger

    def choose(self, enabled, current, pending=None):
        at_linger = pending is not None and "putter" in pending and pending["putter"].name == "lingering"
        if "putter" in enabled and not (self.linger and at_linger):
            return "putter"
        return [name for name in enabled if name != "putter"][0] if len(enabled) > 1 else enabled[0]

    def choose_value(self, options):
        return len(options) - 1


def test_a_putter_that_ended_has_flushed():
    tasks = {"putter": put_then_linger, "checker": check_empty}
    for linger, expected in ((True, [True]), (False, [False])):
        state = {}

        def setup():
            state.update(mp_queue_setup())
            return state

        result = races.run(setup, tasks, strategy=PutterFirstStale(linger))
        assert result.failure is None, result.report()
        assert state["log"] == expected, (linger, result.report())


def test_qsize_counts_an_item_in_flight_as_cpython_does():
    real = multiprocessing.get_context("spawn").Queue()
    real.put("item")
    expected = real.qsize()
    real.close()
    real.join_thread()
    seen, _ = answers(mp_queue_setup, [qsize_after_put])
    assert seen == [[expected]] == [[1]]


def threading_queue_setup():
    return {"q": queue.Queue(), "log": []}


def simple_queue_setup():
    return {"q": multiprocessing.SimpleQueue(), "log": []}


def manager_queue_setup():
    return {"q": races.manager().Queue(), "log": []}


@pytest.mark.parametrize("setup", [threading_queue_setup, simple_queue_setup, manager_queue_setup],
                         ids=["queue.Queue", "SimpleQueue", "Manager.Queue"])
def test_queues_without_a_feeder_thread_are_never_stale(setup):
    seen, result = answers(setup, [put_then_empty])
    assert seen == [[False]] and result.exhaustive and result.schedules == 1


# -- tokens -------------------------------------------------------------------------


def test_tokens_carry_answers_and_refuse_a_mismatch():
    merged = token_mod.merge([0, 0, 1, 1], [(2, 1), (4, 0)])
    assert merged == [0, 0, -2, 1, 1, -1]
    text = token_mod.encode(merged, "0123abcd")
    assert token_mod.decode(text) == (merged, "0123abcd")
    result = races.explore(mp_queue_setup, [put_then_empty], saw_no_stale_empty)
    with pytest.raises(ReplayError, match="is an answer, but the run picks a task"):
        races.replay(result.token, mp_queue_setup, [put_put_empty])  # a put where the token answers


def test_outside_the_harness_a_races_queue_is_a_plain_queue():
    q = races.Queue()
    q.put("item")
    assert q.empty() is False and q.qsize() == 1 and q.get_nowait() == "item"
