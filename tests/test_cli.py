"""The ``races`` command line, run in-process through ``races.cli.main``
(plus one real subprocess).  The module also holds the user targets the
``explore`` and ``replay`` tests name as ``tests.test_cli:OBJECT``."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

import races
import scenarios
from races import catalogue
from races.cli import main


# -- user targets, in the forms `races --help` documents -------------------------
def counter_setup():
    return SimpleNamespace(n=0)


def increment(state):
    value = state.n
    races.point("read")
    state.n = value + 1


def both_counted(state):
    assert state.n == 2, f"n is {state.n} after two increments"


CASE = {"setup": counter_setup, "tasks": {"a": increment, "b": increment}, "invariant": both_counted}
NAMESPACE = SimpleNamespace(**CASE)
NOT_A_CASE = 42
LOST_UPDATE = ["a:read", "b:read"]


def _one_error_line(capsys, *needles):
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("races: error: "), err
    for needle in needles:
        assert needle in lines[0]
    return lines[0]


def test_list_names_every_scenario_with_its_summary(capsys):
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == scenarios.NAMES
    assert scenarios.load("torn_read").summary in lines[scenarios.NAMES.index("torn_read")]


def test_show_prints_story_code_and_a_live_forced_failure(capsys):
    assert main(["show", "lock_order_inversion"]) == 0
    out = capsys.readouterr().out
    scenario = scenarios.load("lock_order_inversion")
    assert scenario.doc in out
    assert "def refund_till_first(state):" in out
    assert "FAILED (deadlock)" in out and "deadlock: buyer -> refund -> buyer" in out
    assert "replay: races replay R1." in out and "scenarios.lock_order_inversion:SCENARIO" in out


def test_run_one_scenario_prints_a_table_and_exits_0(capsys):
    assert main(["run", "double_acquire", "--backend", "thread", "--repeat", "2"]) == 0
    captured = capsys.readouterr()
    assert "2/2 deadlock" in captured.out and "release_first ok" in captured.out
    assert "all as expected" in captured.out
    assert "double_acquire (thread)" in captured.err  # progress goes to stderr


def test_run_json_is_one_object_per_scenario_and_backend(capsys, monkeypatch):
    monkeypatch.setattr(races, "explore", None, raising=False)
    assert main(["run", "torn_read", "lock_granularity", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["scenario"], r["backend"]) for r in rows] == [
        ("torn_read", "thread"), ("torn_read", "process"),
        ("lock_granularity", "thread"), ("lock_granularity", "process"),
    ]
    for row in rows:
        assert row["ok"] and row["reproduced"] == row["runs"] == 3 and row["explored"] is None
        assert all(f["holds"] for f in row["fixes"].values())
    assert rows[0]["fixes"]["atomic_replace"] == {"natural": None, "forced": None, "holds": True}


def test_run_fills_the_exploration_columns_when_races_explore_exists(capsys, monkeypatch):
    calls = []

    def fake_explore(setup, tasks, invariant, strategy, max_schedules, preemption_bound, **options):
        calls.append((strategy, max_schedules, preemption_bound))
        forced = ["buyer0:paying", "buyer1:paying"] if "buyer_without_lock" in repr(tasks) else []
        result = races.run(setup, tasks, invariant, schedule=forced, **options)
        result.schedules, result.exhaustive = 7, not result.failed
        return result

    monkeypatch.setattr(races, "explore", fake_explore, raising=False)
    assert main(["run", "ticket_oversell", "--backend", "thread", "--max-schedules", "50"]) == 0
    out = capsys.readouterr().out
    assert "yes (7 schedules)" in out and "ok (7, exhaustive)" in out
    assert calls == [("dfs", 50, None)] * 2


def test_run_exits_1_when_an_expectation_fails(capsys, monkeypatch):
    scenario = scenarios.load("lock_granularity")
    monkeypatch.setattr(scenario, "expect", "deadlock")
    assert main(["run", "lock_granularity", "--backend", "thread", "--no-explore"]) == 1
    assert "0/3 deadlock" in capsys.readouterr().out


def test_docs_check_passes_on_the_committed_file(capsys):
    assert main(["docs", "--check"]) == 0
    assert Path(catalogue.docs_path()).read_text(encoding="utf-8") == catalogue.render_docs()


def test_docs_writes_and_check_spots_a_stale_file(tmp_path, capsys, monkeypatch):
    target = tmp_path / "docs" / "scenarios.md"
    monkeypatch.setattr(catalogue, "docs_path", lambda: target)
    assert main(["docs", "--check"]) == 1
    assert main(["docs"]) == 0 and main(["docs", "--check"]) == 0
    text = target.read_text(encoding="utf-8")
    assert "## interleaved_output" in text and '`["task1:sleep", "task2:sleep"]`' in text
    target.write_text(text + "edited\n", encoding="utf-8")
    assert main(["docs", "--check"]) == 1


@pytest.mark.parametrize("argv", [["run", "nope"], ["show", "nope"], ["run", "torn_read", "nope"]])
def test_unknown_scenario_is_one_line_and_exit_2(argv, capsys):
    assert main(argv) == 2
    _one_error_line(capsys, "unknown scenario 'nope'")


@pytest.mark.parametrize("command", [["explore"], ["replay", "R1.00000000.0"]])
@pytest.mark.parametrize("spec, needle", [
    ("tests.test_cli", "is not MODULE:OBJECT"),
    ("no_such_module_xyz:CASE", "cannot import module 'no_such_module_xyz'"),
    ("tests.test_cli:MISSING", "has no attribute 'MISSING'"),
    ("tests.test_cli:NOT_A_CASE", "is of type int, not a races.Scenario"),
    ("scenarios.torn_read:SCENARIO --variant fixed:nope", "has no variant 'fixed:nope'"),
])
def test_bad_target_is_one_line_and_exit_2(command, spec, needle, capsys):
    assert main([*command, *spec.split()]) == 2
    _one_error_line(capsys, needle)


def test_explore_without_races_explore_says_so_and_exits_2(capsys, monkeypatch):
    monkeypatch.setattr(races, "explore", None, raising=False)
    assert main(["explore", "tests.test_cli:CASE"]) == 2
    _one_error_line(capsys, "exploration is not available")


def test_explore_uses_races_explore_on_a_namespace(capsys, monkeypatch):
    def fake_explore(setup, tasks, invariant, strategy, max_schedules, preemption_bound, **options):
        return races.run(setup, tasks, invariant, schedule=LOST_UPDATE, **options)

    monkeypatch.setattr(races, "explore", fake_explore, raising=False)
    assert main(["explore", "tests.test_cli:NAMESPACE"]) == 1
    out = capsys.readouterr().out
    assert "FAILED (invariant)" in out and "replay: races replay R1." in out and "tests.test_cli:NAMESPACE" in out


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_replay_reruns_the_token_on_a_dict_target(backend, capsys):
    options = {"backend": backend}
    first = races.run(counter_setup, CASE["tasks"], both_counted, schedule=LOST_UPDATE, **options)
    assert first.failure.kind == "invariant"
    assert main(["replay", first.token, "tests.test_cli:CASE", "--backend", backend]) == 1
    out = capsys.readouterr().out
    assert "FAILED (invariant)" in out and "after two increments" in out  # processes share no n: 0
    assert f"replay: races replay {first.token} tests.test_cli:CASE --backend {backend}" in out


def test_replay_of_a_token_that_does_not_fit_is_exit_2(capsys):
    token = races.run(counter_setup, CASE["tasks"], both_counted, schedule=LOST_UPDATE).token
    assert main(["replay", token, "scenarios.double_acquire:SCENARIO"]) == 2
    _one_error_line(capsys, "token")


def test_console_script_runs_a_scenario():
    script = Path(sys.executable).with_name("races")
    fallback = [sys.executable, "-c", "import races.cli, sys; sys.exit(races.cli.main())"]
    command = [str(script)] if script.exists() else fallback
    done = subprocess.run(
        [*command, "run", "ticket_oversell", "--backend", "thread"],
        capture_output=True, text=True, timeout=120, check=False, env={**os.environ, "PYTHONIOENCODING": "utf-8"},
    )
    assert done.returncode == 0, done.stderr
    assert "3/3 invariant" in done.stdout and "all as expected" in done.stdout


def test_run_shows_an_exploration_that_raises_and_exits_1(capsys, monkeypatch):
    def broken_explore(*args, **kwargs):
        raise RuntimeError("explorer broke")

    monkeypatch.setattr(races, "explore", broken_explore, raising=False)
    assert main(["run", "torn_read", "--backend", "thread"]) == 1
    out = capsys.readouterr().out
    assert "explore raised RuntimeError: explorer broke" in out and "1 FAILED: torn_read (thread)" in out


def test_run_skips_exploration_once_the_budget_is_spent(capsys, monkeypatch):
    calls = []

    def fake_explore(setup, tasks, invariant, **options):
        calls.append(options)
        return races.run(setup, tasks, invariant, backend=options.get("backend", "thread"))

    monkeypatch.setattr(races, "explore", fake_explore, raising=False)
    assert main(["run", "torn_read", "--backend", "thread", "--explore-budget", "0", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert calls == [] and rows[0]["explored"] is None and rows[0]["explore_skipped"] is True


# -- the race detector and stress columns -------------------------------------------
def test_run_json_has_the_detector_and_stress_counts(capsys):
    argv = ["run", "ticket_oversell", "double_acquire", "--backend", "thread", "--no-explore",
            "--stress-runs", "3", "--json"]
    assert main(argv) == 0
    ticket, double = json.loads(capsys.readouterr().out)
    # the detector, on a serial run: the buggy variant's races, none in the fix
    assert ticket["races"]["buggy"] >= 1 and ticket["races"]["fixes"] == {"lock": 0}
    assert double["races"] == {"buggy": 0, "fixes": {"release_first": 0, "rlock": 0}}
    # stress, as options["stress"] declares: the aligned bug fails for real, the fix never
    stress = ticket["stress"]
    assert 1 <= stress["runs"] <= 3 and stress["failures"] == stress["runs"] and stress["rate"] == 1.0
    assert stress["outcomes"] == {"invariant": stress["runs"]}
    assert stress["fixes"]["lock"]["failures"] == 0 and 1 <= stress["fixes"]["lock"]["runs"] <= 3
    # a deadlock would hang a real run: not stressed, and the declaration says why
    assert set(double["stress"]) == {"why_not"} and "hang" in double["stress"]["why_not"]


def test_run_table_shows_the_detector_and_stress_columns(capsys):
    assert main(["run", "ticket_oversell", "queue_full", "--backend", "all", "--no-explore",
                 "--stress-runs", "2"]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0]
    assert "races flagged (bug; fixes)" in header and "stress failures (bug; fixes)" in header
    lines = {tuple(line.split()[:2]): line for line in out.splitlines()[2:] if line.strip()}
    assert "2/2; fixes 0/" in lines[("ticket_oversell", "thread")]
    assert "threads only" in lines[("ticket_oversell", "process/forkserver")] or \
        "threads only" in lines[("ticket_oversell", "process/spawn")]
    assert "control only" in lines[("queue_full", "thread")]
    assert "0; fixes 0, 0, 0" in lines[("queue_full", "thread")]


def test_stress_runs_0_leaves_the_column_out_and_the_budget_skips_rows(capsys):
    assert main(["run", "torn_read", "--backend", "thread", "--no-explore", "--stress-runs", "0", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["stress"] is None and row["races"]["buggy"] == 1
    assert main(["run", "torn_read", "double_acquire", "--backend", "thread", "--no-explore",
                 "--stress-budget", "0", "--json"]) == 0
    torn, double = json.loads(capsys.readouterr().out)
    assert torn["stress"] == {"skipped": "time budget"} and "why_not" in double["stress"]


def test_stress_processes_stresses_the_process_rows(capsys):
    assert main(["run", "ticket_oversell", "--backend", "process", "--no-explore", "--stress-processes",
                 "--stress-runs", "2", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["backend"] == "process" and row["stress"]["runs"] >= 1
    assert row["stress"]["fixes"]["lock"]["failures"] == 0


def test_a_fix_that_fails_under_stress_or_is_flagged_fails_the_row(capsys, monkeypatch):
    real = catalogue.stress_row

    def fix_fails(*args, **kwargs):
        row = real(*args, **kwargs)
        row["fixes"]["lock"] = {"runs": 1, "failures": 1, "outcomes": {"invariant": 1}}
        return row

    monkeypatch.setattr(catalogue, "stress_row", fix_fails)
    assert main(["run", "ticket_oversell", "--backend", "thread", "--no-explore", "--stress-runs", "1"]) == 1
    assert "fixes 1/1" in capsys.readouterr().out
    monkeypatch.setattr(catalogue, "stress_row", real)
    monkeypatch.setattr(catalogue, "distinct_races", lambda result: 1)
    assert main(["run", "ticket_oversell", "--backend", "thread", "--no-explore", "--stress-runs", "0"]) == 1
    assert "1; fixes 1" in capsys.readouterr().out


def test_negative_stress_runs_is_exit_2(capsys):
    assert main(["run", "torn_read", "--stress-runs", "-1"]) == 2
    _one_error_line(capsys, "--stress-runs")


def test_stress_a_scenario_uses_its_declared_alignment(capsys):
    code = main(["stress", "scenarios.ticket_oversell:SCENARIO", "--runs", "5"])
    out = capsys.readouterr().out
    assert code == 1
    assert "stress: 5 runs" in out and "align='paying'" in out
    assert "invariant" in out and "FAILURE" in out


def test_stress_stop_on_first_and_a_hang_on_processes(capsys):
    code = main(["stress", "scenarios.queue_full:SCENARIO", "--backend", "process", "--runs", "50",
                 "--stop-on-first"])
    out = capsys.readouterr().out
    assert code == 1
    assert "stress: 1 runs" in out and "timeout=2.0" in out and "timed out after 2.0s" in out
    assert "in make_rose" in out  # the stuck task's stack


def test_stress_notes_why_a_bug_may_not_show_and_can_show_output(capfd):
    code = main(["stress", "scenarios.daemon_children:SCENARIO", "--runs", "1", "--show-output"])
    out, err = capfd.readouterr()
    assert code == 1 and "AssertionError: daemonic processes are not allowed to have children" in err
    code = main(["stress", "scenarios.queue_full:SCENARIO", "--backend", "thread", "--variant", "fixed:consumer",
                 "--runs", "1"])
    assert code == 0
    code = main(["stress", "scenarios.daemon_killed:SCENARIO", "--runs", "1", "--timeout", "10"])
    out, err = capfd.readouterr()
    assert "note: why stress may not show it: a daemon is killed when its parent process exits" in out


def test_stress_a_fix_exits_0(capsys):
    code = main(["stress", "scenarios.ticket_oversell:SCENARIO", "--variant", "fixed:lock", "--runs", "5"])
    assert code == 0
    assert "failure rate: 0.0% (0/5)" in capsys.readouterr().out


@pytest.mark.parametrize("extra, needle", [
    (["--delay", "paying"], "--delay 'paying' is not TASK:POINT=SECONDS"),
    (["--delay", "nobody:paying=0.01"], "unknown task 'nobody'"),
    (["--runs", "0"], "--runs must be at least 1"),
])
def test_stress_bad_options_are_one_line_and_exit_2(extra, needle, capsys):
    code = main(["stress", "scenarios.ticket_oversell:SCENARIO", *extra])
    err = capsys.readouterr().err
    assert code == 2
    assert needle in err and len(err.strip().splitlines()) == 1
