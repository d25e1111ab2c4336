"""A Manager's Lock, Queue, Event... are controlled inside the harness: a wait
that cannot end is diagnosed at once (never the wall-clock timeout), in both
backends; outside the harness the Manager makes its real proxies."""
from __future__ import annotations

import multiprocessing
from multiprocessing import managers

import pytest

import races
from tests.leaks import task_processes, task_threads

BACKENDS = [
    pytest.param({"backend": "thread"}, id="thread"),
    pytest.param({"backend": "process", "start_method": "forkserver"}, id="process-forkserver"),
]


@pytest.fixture(params=BACKENDS)
def mode(request):
    yield {**request.param, "timeout": 20.0}  # a diagnosis must come long before this
    assert task_threads() == []
    assert task_processes() == []


# -- tasks (module level: process tasks are pickled) --------------------------------


def lock_setup():
    return {"lock": races.manager().Lock(), "data": races.manager().dict({"n": 0})}


def grab_twice(state):
    state["lock"].acquire()
    state["lock"].acquire()


def bump_locked(state):
    with state["lock"]:
        state["data"]["n"] = state["data"]["n"] + 1


def n_is_two(state):
    assert state["data"]["n"] == 2, f"n = {state['data']['n']}"


def queue_setup():
    return {"q": races.manager().Queue(2)}


def put_three(state):
    for item in range(3):
        state["q"].put(item)


def get_one(state):
    state["q"].get()


def produce_two(state):
    state["q"].put("a")
    state["q"].put("b")
    state["q"].join()  # until both are done


def consume_two(state):
    for _ in range(2):
        state["q"].get()
        state["q"].task_done()


def event_setup():
    return {"event": races.manager().Event()}


def wait_for_event(state):
    state["event"].wait()


# -- diagnoses -------------------------------------------------------------------------


def test_double_acquire_of_a_manager_lock_is_a_self_deadlock(mode):
    result = races.run(lock_setup, [grab_twice], **mode)
    assert result.failure.kind == "deadlock", result.report()
    assert "acquired twice" in result.failure.message
    assert result.failure.message.count("test_manager_sync.py:") >= 2  # both acquisition sites


def test_put_on_a_full_manager_queue_is_blocked(mode):
    result = races.run(queue_setup, [put_three], **mode)
    assert result.failure.kind == "blocked", result.report()
    assert "full (2/2)" in result.failure.message


def test_get_on_an_empty_manager_queue_is_blocked(mode):
    result = races.run(queue_setup, [get_one], **mode)
    assert result.failure.kind == "blocked", result.report()
    assert "empty" in result.failure.message


def test_an_event_never_set_is_blocked(mode):
    result = races.run(event_setup, [wait_for_event], **mode)
    assert result.failure.kind == "blocked", result.report()
    assert "Event" in result.failure.message


def test_joinable_manager_queue_hands_over_and_joins(mode):
    result = races.run(queue_setup, {"producer": produce_two, "consumer": consume_two}, **mode)
    assert result.failure is None, result.report()
    steps = [(e.task, e.name) for e in result.trace]
    assert ("producer", "join") in steps and ("consumer", "task_done") in steps


def test_a_manager_lock_makes_the_update_safe_in_every_schedule(mode):
    result = races.explore(lock_setup, [bump_locked, bump_locked], n_is_two, stop_on_first=False,
                           max_schedules=200, **mode)
    assert not result.failed, result.report()
    assert result.exhaustive and result.schedules > 1


# -- outside the harness ----------------------------------------------------------------


def test_outside_the_harness_a_manager_makes_real_proxies():
    with multiprocessing.get_context("forkserver").Manager() as manager:
        lock, q = manager.Lock(), manager.Queue()
        assert isinstance(lock, managers.AcquirerProxy)
        assert type(q).__name__ == "AutoProxy[Queue]" and not isinstance(q, races.Queue)
        assert lock.acquire() and lock.release() is None


def test_a_manager_lock_made_in_setup_is_the_controlled_lock():
    seen = []

    def setup():
        seen.append(races.manager().Lock())
        return None

    result = races.run(setup, [lambda state: None])
    assert not result.failed
    assert isinstance(seen[0], races.Lock)
