"""Acceptance for the first two scenarios: each bug reproduces under its
schedule 100 times out of 100, in each backend, under spawn and forkserver;
each fix passes or reports the schedule infeasible; replay is exact."""
from __future__ import annotations

import pytest

import scenarios

RUNS = 100
SCENARIOS = ["ticket_oversell", "manager_lost_update"]
MODES = [
    pytest.param({"backend": "thread"}, id="thread"),
    pytest.param({"backend": "process", "start_method": "spawn"}, id="spawn"),
    pytest.param({"backend": "process", "start_method": "forkserver"}, id="forkserver"),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", SCENARIOS)
def test_bug_reproduces_every_time(name, mode):
    scenario = scenarios.load(name)
    kinds = [scenario.run("buggy", **mode).failure for _ in range(RUNS)]
    assert [f.kind if f else None for f in kinds] == [scenario.expect] * RUNS


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", SCENARIOS)
def test_fix_holds_or_schedule_is_infeasible(name, mode):
    scenario = scenarios.load(name)
    for variant in scenario.fixes:
        forced = scenario.run(f"fixed:{variant}", **mode)
        assert forced.failure is None or forced.failure.kind == "schedule", forced.report()
        natural = scenario.run(f"fixed:{variant}", schedule=[], **mode)
        assert natural.failure is None, natural.report()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", SCENARIOS)
def test_replay_is_identical_twenty_times(name, mode):
    scenario = scenarios.load(name)
    first = scenario.run("buggy", **mode)
    for _ in range(20):
        again = scenario.replay(first.token, "buggy", **mode)
        assert again.trace == first.trace
        assert again.failure == first.failure
