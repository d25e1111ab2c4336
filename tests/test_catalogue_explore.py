"""``races run``'s exploration columns: within the default budget the search
finds every catalogue bug, with the kind the scenario expects, and a process
run of the search takes the same schedules as a thread run (one schedule
space, two backends)."""
from __future__ import annotations

import pytest

import scenarios
from races import catalogue
from races.cli import DEFAULT_MAX_SCHEDULES


def explored(name: str, backend: str) -> dict:
    scenario = scenarios.load(name)
    return catalogue._explore_row(name, scenario, catalogue.run_options(backend, None), DEFAULT_MAX_SCHEDULES,
                                  fix_schedules=3)


@pytest.mark.parametrize("name", scenarios.NAMES)
def test_the_default_search_finds_every_bug_and_no_fix_fails(name):
    row = explored(name, "thread")
    assert row["found"], f"{name}: the search ended with {row['kind']} after {row['schedules']} schedules"
    assert row["schedules"] <= DEFAULT_MAX_SCHEDULES // 2, "found, but near the end of the budget"
    assert not any(fix["failed"] for fix in row["fixes"].values()), row["fixes"]
    assert all(fix["schedules"] <= 3 for fix in row["fixes"].values())  # the fix budget holds


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in scenarios.NAMES if "process" in scenarios.load(n).backends])
def test_the_process_search_takes_the_same_schedules_as_the_thread_search(name):
    on_threads, on_processes = explored(name, "thread"), explored(name, "process")
    assert on_processes["found"] and on_processes["schedules"] == on_threads["schedules"]
