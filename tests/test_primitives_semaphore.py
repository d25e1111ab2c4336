"""races.Semaphore / BoundedSemaphore against threading's, in both backends."""
from __future__ import annotations

import functools
import threading
from types import SimpleNamespace

import pytest

import races
from tests.backends import outcome


def script(sem):
    return [
        outcome(sem.acquire),
        outcome(sem.acquire, False),
        outcome(sem.acquire, timeout=0.01),
        outcome(sem.acquire, False, 1),
        outcome(sem.release),
        outcome(sem.release, 0),
        outcome(sem.acquire, timeout=-1),
        outcome(sem.release, 2),
        outcome(sem.acquire),
        outcome(sem.acquire, blocking=True, timeout=0.01),
        outcome(sem.release),
        outcome(sem.release),
        outcome(sem.release),
        outcome(sem.acquire, False),
    ]


def setup(expected=(None, None)):
    return SimpleNamespace(
        sem=races.Semaphore(1), expected=expected[0],
        bounded=races.BoundedSemaphore(2), expected_bounded=expected[1],
        zero=races.Semaphore(0, name="S0"),
    )


def run_script(s):
    assert script(s.sem) == s.expected
    assert script(s.bounded) == s.expected_bounded


def reference():
    """CPython's outcomes, computed outside any run (setup() runs in patch mode)."""
    return script(threading.Semaphore(1)), script(threading.BoundedSemaphore(2))


def test_semaphore_matches_threading(backend):
    result = races.run(functools.partial(setup, reference()), [run_script], **backend)
    assert not result.failed, result.report()


def test_bounded_semaphore_released_too_many_times():
    sem = races.BoundedSemaphore(1)
    with pytest.raises(ValueError, match="Semaphore released too many times"):
        sem.release()
    with pytest.raises(ValueError, match="semaphore initial value must be >= 0"):
        races.Semaphore(-1)


def take_zero(s):
    s.zero.acquire()


def release_zero(s):
    races.point("before_release")
    s.zero.release()


def test_semaphore_waiter_is_woken_by_release(backend):
    result = races.run(setup, {"waiter": take_zero, "releaser": release_zero}, **backend)
    assert not result.failed, result.report()
    assert result.steps()[-2:] == [("waiter", "S0.acquire"), ("waiter", "end")]


def test_semaphore_never_released_is_blocked(backend):
    result = races.run(setup, {"waiter": take_zero}, **backend)
    assert result.failure.kind == "blocked"
    assert "waits forever at Semaphore S0" in result.failure.message
    assert "test_primitives_semaphore.py:" in result.failure.message


def timed_zero(s):
    assert s.zero.acquire(timeout=4) is False


def test_semaphore_timed_acquire_uses_virtual_time(backend):
    result = races.run(setup, [timed_zero], **backend)
    assert not result.failed, result.report()
    entry = next(e for e in result.trace if e.name == "acquire")
    assert entry.clock == 4.0 and "timed out" in entry.note


def test_semaphore_outside_the_harness():
    assert script(races.Semaphore(1)) == script(threading.Semaphore(1))
    assert script(races.BoundedSemaphore(2)) == script(threading.BoundedSemaphore(2))


def taken_in_setup():
    s = setup()
    assert s.sem.acquire()
    return s


def finds_it_taken(s):
    assert s.sem.acquire(timeout=1) is False
    s.sem.release()
    s.sem.release()


def test_setup_acquisitions_hold_in_the_run(backend):
    def invariant(s):
        assert s.sem.acquire(False) and s.sem.acquire(False) and not s.sem.acquire(False)

    result = races.run(taken_in_setup, [finds_it_taken], invariant, **backend)
    assert not result.failed, result.report()
