"""races.Event against threading.Event, in both backends."""
from __future__ import annotations

import functools
import threading
from types import SimpleNamespace


import races
from tests.backends import outcome


def script(event):
    return [
        outcome(event.is_set),
        outcome(event.wait, 0.01),
        outcome(event.wait, 0),
        outcome(event.wait, -1),
        outcome(event.set),
        outcome(event.is_set),
        outcome(event.wait),
        outcome(event.wait, 0),
        outcome(event.set),
        outcome(event.clear),
        outcome(event.is_set),
        outcome(event.wait, 0.01),
    ]


def reference():
    """CPython's outcomes, computed outside any run (setup() runs in patch mode)."""
    return script(threading.Event())


def setup(expected=None):
    return SimpleNamespace(event=races.Event("e"), expected=expected)


def run_script(s):
    assert script(s.event) == s.expected


def waiter(s):
    assert s.event.wait() is True


def setter(s):
    races.point("before_set")
    s.event.set()


def timed_waiter(s):
    assert s.event.wait(timeout=2.5) is False


def test_event_matches_threading(backend):
    result = races.run(functools.partial(setup, reference()), [run_script], **backend)
    assert not result.failed, result.report()


def test_event_wakes_waiter(backend):
    result = races.run(setup, {"w": waiter, "s": setter}, **backend)
    assert not result.failed, result.report()
    assert ("w", "e.wait") in result.steps()


def test_event_never_set_is_blocked(backend):
    result = races.run(setup, {"w": waiter}, **backend)
    assert result.failure.kind == "blocked"
    assert "waits for Event e at tests/test_primitives_event.py:" in result.failure.message
    assert "which no task will set" in result.failure.message


def test_event_timed_wait_uses_virtual_time(backend):
    result = races.run(setup, {"w": timed_waiter}, **backend)
    assert not result.failed, result.report()
    entry = next(e for e in result.trace if e.name == "wait")
    assert entry.clock == 2.5 and "timed out" in entry.note


def test_event_outside_the_harness():
    assert script(races.Event()) == script(threading.Event())


def set_in_setup():
    s = setup()
    s.event.set()
    return s


def clears(s):
    assert s.event.wait() is True
    s.event.clear()


def test_flag_set_in_setup_holds_and_final_flag_reaches_invariant(backend):
    def invariant(s):
        assert not s.event.is_set()

    result = races.run(set_in_setup, [clears], invariant, **backend)
    assert not result.failed, result.report()
