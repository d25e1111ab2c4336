"""races.RLock against threading.RLock, in the thread and process backends."""
from __future__ import annotations

import functools
import threading
from types import SimpleNamespace


import races
from tests.backends import outcome


def script(lock):
    return [
        outcome(lock.release),
        outcome(lock.acquire),
        outcome(lock.acquire, False),
        outcome(lock.acquire, True, 0.5),
        outcome(lock._is_owned),
        outcome(lock.acquire, False, 1),
        outcome(lock.acquire, timeout=-3),
        outcome(lock.release),
        outcome(lock.release),
        outcome(lock.release),
        outcome(lock._is_owned),
        outcome(lock.release),
    ]


def reference():
    """CPython's outcomes, computed outside any run (setup() runs in patch mode)."""
    return script(threading.RLock())


def setup(expected=None):
    return SimpleNamespace(lock=races.RLock("R"), expected=expected)


def run_script(s):
    assert script(s.lock) == s.expected


def hold(s):
    with s.lock, s.lock:
        races.point("holding")


def foreign_release(s):
    try:
        s.lock.release()
    except RuntimeError as exc:
        assert str(exc) == "cannot release un-acquired lock"
    else:
        raise AssertionError("release by a non-owner did not raise")


def timed_acquire(s):
    assert s.lock.acquire(timeout=3) is False


def take_forever(s):
    s.lock.acquire()
    races.point("took")


def test_rlock_matches_threading(backend):
    result = races.run(functools.partial(setup, reference()), [run_script], **backend)
    assert not result.failed, result.report()


def test_rlock_release_by_non_owner_and_timed_acquire(backend):
    result = races.run(setup, {"a": hold, "b": foreign_release}, **backend)
    assert not result.failed, result.report()
    result = races.run(setup, {"a": take_forever, "b": timed_acquire}, **backend)
    assert not result.failed, result.report()
    timed = [e for e in result.trace if e.task == "b" and e.name == "acquire"]
    assert timed[0].clock == 3.0 and "timed out" in timed[0].note


def test_rlock_owner_ended_then_blocked(backend):
    result = races.run(setup, {"a": take_forever, "b": take_forever}, **backend)
    assert result.failure.kind == "blocked"
    assert "held by a" in result.failure.message
    assert any("ended holding R" in w for w in result.warnings)


def test_rlock_outside_the_harness():
    lock = races.RLock()
    assert script(lock) == script(threading.RLock())


def two_setup():
    return SimpleNamespace(a=races.RLock("A"), b=races.RLock("B"))


def a_then_b(s):
    with s.a:
        races.point("has_a")
        with s.a, s.b:
            pass


def b_then_a(s):
    with s.b:
        races.point("has_b")
        with s.a:
            pass


def test_rlock_order_inversion_is_a_deadlock(backend):
    result = races.run(two_setup, {"ab": a_then_b, "ba": b_then_a}, schedule=["ab:has_a", "ba:has_b"], **backend)
    assert result.failure.kind == "deadlock"
    assert "ab -> ba -> ab" in result.failure.message
    assert "ab holds A (acquired at tests/test_primitives_rlock.py:" in result.failure.message
