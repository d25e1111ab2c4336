"""An exploration lets its ended task processes exit while the next runs go
on, at most LINGER_MAX at a time, and waits for every one before it returns;
a single run waits for its own."""
from __future__ import annotations

import pytest

import races
from races._core import process_transport
from tests.leaks import task_processes


def nothing():
    return None


def two_points(state):
    races.point("a")
    races.point("b")


TASKS = [two_points, two_points]


def test_an_exploration_waits_for_every_task_process_it_left_exiting(monkeypatch):
    monkeypatch.setattr(process_transport, "LINGER_MAX", 2)
    seen = []

    def count(result):
        seen.append(len(process_transport._lingering))

    result = races.explore(nothing, TASKS, backend="process", start_method="forkserver", stop_on_first=False,
                           on_result=count)
    assert result.exhaustive and result.schedules == 20 and not result.failed
    assert max(seen) <= 2  # never more than LINGER_MAX left exiting
    assert process_transport._lingering is None  # the exploration is over
    assert task_processes() == []
    assert result.notes == []


def test_a_single_run_waits_for_its_task_processes():
    result = races.run(nothing, TASKS, backend="process", start_method="forkserver")
    assert not result.failed
    assert process_transport._lingering is None
    assert task_processes() == []


class StuckProcess:
    """A process that never exits, not even when killed."""

    pid = 4242

    def __init__(self):
        self.killed = self.released = False

    def wait_exit(self, timeout):
        return False

    def kill(self):
        self.killed = True

    def release(self):
        self.released = True


def test_a_process_that_will_not_exit_is_killed_and_noted():
    notes = []
    stuck = StuckProcess()
    with process_transport.deferred_exits(notes, grace=0.0):
        process_transport._lingering.append(stuck)
    assert stuck.killed and stuck.released
    assert notes == ["task process (pid 4242) could not be reaped"]


def test_deferred_exits_nest_and_only_the_outer_block_waits():
    notes = []
    stuck = StuckProcess()
    with process_transport.deferred_exits(notes, grace=0.0):
        with process_transport.deferred_exits(notes, grace=0.0):
            process_transport._lingering.append(stuck)
        assert not stuck.killed  # still the outer block's
    assert stuck.killed and len(notes) == 1


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_every_start_method_explores_without_leftovers(method):
    result = races.explore(nothing, TASKS, backend="process", start_method=method, stop_on_first=False)
    assert result.schedules == 20 and result.exhaustive
    assert task_processes() == []
