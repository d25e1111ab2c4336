"""races.Barrier against threading.Barrier, in both backends."""
from __future__ import annotations

import functools
import threading
from types import SimpleNamespace


import races
from tests.backends import outcome


def failing_action():
    raise KeyError("action failed")


def script(barrier, failing):
    return [
        outcome(barrier.wait),
        outcome(lambda: barrier.n_waiting),
        outcome(lambda: barrier.broken),
        outcome(lambda: barrier.parties),
        outcome(barrier.abort),
        outcome(barrier.wait),
        outcome(lambda: barrier.broken),
        outcome(barrier.reset),
        outcome(lambda: barrier.broken),
        outcome(barrier.wait, 0.01),
        outcome(barrier.reset),
        outcome(failing.wait),
        outcome(lambda: failing.broken),
        outcome(failing.wait),
        outcome(failing.reset),
        outcome(lambda: failing.n_waiting),
    ]


def reference():
    """CPython's outcomes, computed outside any run (setup() runs in patch mode)."""
    return script(threading.Barrier(1), threading.Barrier(1, failing_action))


def setup(expected=None):
    return SimpleNamespace(
        one=races.Barrier(1), failing=races.Barrier(1, failing_action),
        expected=expected,
        b=races.Barrier(3, name="b"), acted=races.Event("acted"),
        timed=races.Barrier(3, timeout=5, name="timed"), two=races.Barrier(2, name="two"),
    )


def run_script(s):
    assert script(s.one, s.failing) == s.expected


def test_barrier_matches_threading(backend):
    result = races.run(functools.partial(setup, reference()), [run_script], **backend)
    assert not result.failed, result.report()


def test_barrier_outside_the_harness():
    ours = script(races.Barrier(1), races.Barrier(1, failing_action))
    assert ours == script(threading.Barrier(1), threading.Barrier(1, failing_action))


class SetFlag:
    """A picklable action: set the event."""

    def __init__(self, event):
        self.event = event

    def __call__(self):
        self.event.set()


def action_setup():
    s = setup()
    s.b = races.Barrier(3, SetFlag(s.acted), name="b")
    return s


def party(s):
    index = s.b.wait()
    assert s.acted.is_set(), "a party passed before the action ran"
    races.point(f"index{index}")


def test_three_parties_pass_after_the_action(backend):
    result = races.run(action_setup, [party, party, party], **backend)
    assert not result.failed, result.report()
    names = [e.name for e in result.trace]
    assert sorted(n for n in names if n.startswith("index")) == ["index0", "index1", "index2"]
    assert names.index("set") < names.index("release") < min(i for i, n in enumerate(names) if n == "passed")


def test_barrier_short_of_parties_is_blocked(backend):
    result = races.run(action_setup, [party, party], **backend)
    assert result.failure.kind == "blocked"
    assert "waits at Barrier b (2 of 3 parties arrived" in result.failure.message


def timed_party(s):
    try:
        s.timed.wait()
    except threading.BrokenBarrierError:
        races.point("saw_broken")
    else:
        raise AssertionError("the barrier did not break")
    assert s.timed.broken


def test_barrier_timeout_breaks_it_for_everyone(backend):
    result = races.run(setup, [timed_party, timed_party], **backend)
    assert not result.failed, result.report()
    assert [e.clock for e in result.trace if e.name == "saw_broken"] == [5.0, 5.0]
    assert sum("timed out after 5s" in e.note for e in result.trace) == 1


def waits_for_two(s):
    try:
        s.two.wait()
    except threading.BrokenBarrierError:
        races.point("reset_seen")
    assert s.two.wait() == 1


def resets_then_waits(s):
    races.point("before_reset")
    assert s.two.n_waiting == 1
    s.two.reset()
    assert not s.two.broken
    assert s.two.n_waiting == 0
    races.point("after_reset")
    assert s.two.wait() == 0


def test_reset_breaks_current_waiters_and_reuses_barrier(backend):
    result = races.run(setup, {"w": waits_for_two, "r": resets_then_waits}, **backend)
    assert not result.failed, result.report()
    assert ("w", "reset_seen") in result.steps()
