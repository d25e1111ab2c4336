"""races.Condition against threading.Condition, in both backends."""
from __future__ import annotations

import functools
import threading
from types import SimpleNamespace

import pytest

import races
from tests.backends import outcome


def script(cond):
    calls = []

    def predicate():
        calls.append(1)
        return len(calls) >= 3 and "done"

    out = [
        outcome(cond.wait),
        outcome(cond.wait, 0.01),
        outcome(cond.notify),
        outcome(cond.notify_all),
        outcome(cond.wait_for, lambda: True),
        outcome(cond.acquire),
        outcome(cond.wait, 0.01),
        outcome(cond.wait, 0),
        outcome(cond.wait_for, lambda: 0, 0.01),
        outcome(cond.wait_for, lambda: "yes"),
        outcome(cond.wait_for, predicate, 0.05),
        outcome(cond.notify),
        outcome(cond.notify, 3),
        outcome(cond.notify_all),
        outcome(cond.release),
    ]
    with cond:
        out.append(outcome(cond.wait, 0.01))
    out.append(outcome(cond.release))
    return out


def rlock_script(cond):
    cond.acquire()
    cond.acquire()
    out = [outcome(cond.wait, 0.01), outcome(cond.release), outcome(cond.release), outcome(cond.release)]
    return out


def reference():
    """CPython's outcomes, computed outside any run (setup() runs in patch mode)."""
    return (
        script(threading.Condition()), script(threading.Condition(threading.Lock())),
        rlock_script(threading.Condition()),
    )


def setup(expected=(None, None, None)):
    lock = races.Lock("L")
    return SimpleNamespace(
        cond=races.Condition(name="c"), expected=expected[0],
        lcond=races.Condition(lock, name="lc"), lexpected=expected[1],
        rexpected=expected[2],
        out=races.Queue(name="out"), flag=races.Event("flag"),
    )


def run_scripts(s):
    assert script(s.cond) == s.expected
    assert rlock_script(s.cond) == s.rexpected
    assert script(s.lcond) == s.lexpected


def test_condition_matches_threading(backend):
    result = races.run(functools.partial(setup, reference()), [run_scripts], **backend)
    assert not result.failed, result.report()


def test_condition_outside_the_harness():
    assert script(races.Condition()) == script(threading.Condition())
    assert rlock_script(races.Condition()) == rlock_script(threading.Condition())
    with pytest.raises(TypeError, match="races.Lock or races.RLock"):
        races.Condition(threading.Lock())


def waiter(s):
    name = races.in_task()
    with s.cond:
        assert s.cond.wait() is True
        s.out.put(name)


def fifo_notifier(s):
    with s.cond:
        s.cond.notify()
    assert s.out.get() == "first"
    with s.cond:
        s.cond.notify()
    assert s.out.get() == "second"


def test_notify_wakes_waiters_in_fifo_order(backend):
    tasks = {"second": waiter, "first": waiter, "n": fifo_notifier}
    result = races.run(setup, tasks, schedule=["first:notified", "second:notified"], **backend)
    assert not result.failed, result.report()
    woken = [e.task for e in result.trace if e.name == "notified"]
    assert woken == ["first", "second"]


def predicate_waiter(s):
    with s.cond:
        assert s.cond.wait_for(s.flag.is_set) is True
        races.point("saw_flag")


def flag_setter(s):
    races.point("before")
    with s.cond:
        s.cond.notify_all()  # a spurious wake-up: the predicate is still false
    races.point("between")
    with s.cond:
        s.flag.set()
        s.cond.notify_all()
        races.point("notified_all")


def test_wait_for_rechecks_the_predicate(backend):
    result = races.run(
        setup, {"w": predicate_waiter, "s": flag_setter}, schedule=["w:c.notified", "s:between", "w:c.wait"], **backend
    )
    assert not result.failed, result.report()
    steps = result.steps()
    assert steps.index(("w", "saw_flag")) > steps.index(("s", "notified_all"))
    assert [s for s in steps if s == ("w", "c.notified")] == [("w", "c.notified")] * 2


def lonely_waiter(s):
    with s.cond:
        s.cond.wait()


def test_wait_never_notified_is_blocked(backend):
    result = races.run(setup, {"w": lonely_waiter}, **backend)
    assert result.failure.kind == "blocked"
    assert "waits on Condition c at tests/test_primitives_condition.py:" in result.failure.message
    assert "which no task will notify" in result.failure.message


def notify_and_keep_lock(s):
    with s.cond:
        s.cond.notify()
        races.point("keeps_lock")
        s.flag.wait()


def test_woken_waiter_blocks_on_reacquire(backend):
    result = races.run(setup, {"w": lonely_waiter, "n": notify_and_keep_lock}, **backend)
    assert result.failure.kind == "blocked"
    message = result.failure.message
    assert "w waits to reacquire" in message and "held by n" in message
    assert "n holds" in message and "waits for Event flag" in message


def timed_wait(s):
    with s.cond:
        assert s.cond.wait(1.5) is False
        assert s.cond.wait_for(s.flag.is_set, timeout=2) is False
        races.point("gave_up")


def test_timed_waits_use_virtual_time(backend):
    result = races.run(setup, [timed_wait], **backend)
    assert not result.failed, result.report()
    assert next(e for e in result.trace if e.name == "gave_up").clock == 3.5


def waits_holding_other(s):
    with s.other, s.cond:
        s.cond.wait()


def notifies_then_wants_other(s):
    with s.cond:
        s.cond.notify()
        with s.other:
            pass


def other_setup():
    s = setup()
    s.other = races.RLock("other")
    return s


def test_reacquire_after_wait_can_be_part_of_a_deadlock_cycle(backend):
    result = races.run(other_setup, {"a": waits_holding_other, "b": notifies_then_wants_other}, **backend)
    assert result.failure.kind == "deadlock"
    message = result.failure.message
    assert "a -> b -> a" in message
    assert "a holds other" in message and "waits to reacquire c.lock" in message
    assert "b holds c.lock" in message and "waits for other" in message
