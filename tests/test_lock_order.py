"""Lock-order inversion warnings (lockdep): reported from a run that did not deadlock."""
from __future__ import annotations

import pytest

import races
import scenarios
from tests import sample_tasks as st


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_inversion_is_warned_although_the_run_passed(backend):
    result = races.run(st.two_locks_setup, {"ab": st.take_a_then_b, "ba": st.take_b_then_a}, backend=backend)
    assert result.failure is None  # the default order runs ab to its end first: no deadlock
    warnings = [w for w in result.warnings if "lock order inversion" in w]
    assert len(warnings) == 1
    text = warnings[0]
    assert "ab took A (tests/sample_tasks.py:" in text and "then B (tests/sample_tasks.py:" in text
    assert "ba took B (tests/sample_tasks.py:" in text and "then A (tests/sample_tasks.py:" in text
    assert "one global order" in text


def test_one_order_gives_no_warning():
    result = races.run(st.two_locks_setup, {"ab": st.take_a_then_b, "ab2": st.take_a_then_b})
    assert result.failure is None
    assert not [w for w in result.warnings if "lock order inversion" in w]


def test_the_same_task_in_both_orders_is_not_an_inversion():
    def both(s):
        st.take_a_then_b(s)
        st.take_b_then_a(s)

    result = races.run(st.two_locks_setup, {"solo": both})
    assert not [w for w in result.warnings if "lock order inversion" in w]


def test_catalogue_scenario_warns_on_its_serial_run_and_its_fix_does_not():
    scenario = scenarios.load("lock_order_inversion")
    buggy = scenario.run("buggy", schedule=[])
    assert buggy.failure is None
    assert any("lock order inversion" in w for w in buggy.warnings)
    fixed = scenario.run("fixed:one_order", schedule=[])
    assert not any("lock order inversion" in w for w in fixed.warnings)
