"""Every fix in the catalogue is proved: exhaustive exploration within the
scenario's declared bound (``Scenario.proof``) finds no failing schedule, and
the same bound is enough to find the buggy variant's bug."""
from __future__ import annotations

import pytest

import scenarios

pytestmark = pytest.mark.slow

FIXES = [
    pytest.param(name, fix, id=f"{name}-{fix}")
    for name in scenarios.NAMES
    for fix in scenarios.load(name).fixes
]


@pytest.mark.parametrize("name, fix", FIXES)
def test_fix_holds_in_every_schedule_within_its_bound(name, fix):
    scenario = scenarios.load(name)
    result = scenario.prove(f"fixed:{fix}")
    assert not result.failed, result.report()
    assert result.exhaustive is True, f"{result.schedules} schedules did not cover the bound {scenario.proof}"


@pytest.mark.parametrize("name", scenarios.NAMES)
def test_the_bound_is_enough_to_find_the_bug(name):
    scenario = scenarios.load(name)
    result = scenario.prove("buggy")
    assert result.failed, f"{name}: the proof bound {scenario.proof} does not reach the bug"
