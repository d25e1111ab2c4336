"""The pytest plugin: the ``races`` fixture, the marker, the options, the
report section and header, replay through pytest, and the rerun warning.

Every test writes a small test module with pytester and runs pytest on it.
"""
from __future__ import annotations

import re
import shlex
import textwrap

import pytest

import races as racelib
from tests.plugin_example import EXAMPLE  # the tiny lost update, failing under LOST

@pytest.fixture(autouse=True)
def _lean_inner_pytest(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    # hypothesis' pytest plugin imports (and assertion-rewrites) all of hypothesis at
    # the end of every session: a second per pytester run.  The inner runs need none of it.
    # Under an editable (PEP 660) install an inline run also warns that ``races`` was
    # imported before it could be rewritten: true, and harmless here.
    if "pytester" in request.fixturenames:
        request.getfixturevalue("pytester")  # it clears PYTEST_ADDOPTS: set it after
        monkeypatch.setenv(
            "PYTEST_ADDOPTS", "-p no:hypothesispytest -W ignore::pytest.PytestAssertRewriteWarning"
        )


def write(pytester: pytest.Pytester, body: str, name: str = "test_example") -> None:
    pytester.makepyfile(**{name: EXAMPLE + textwrap.dedent(body)})


def section(output: str, title: str = "races") -> str:
    """The text of report section ``title`` (pytest prints it under a ``--- title ---`` rule)."""
    lines = output.splitlines()
    rule = re.compile(rf"^-+ {re.escape(title)} -+$")
    for i, line in enumerate(lines):
        if rule.match(line):
            out: list[str] = []
            for rest in lines[i + 1:]:
                if re.match(r"^([-=_])\1{2,} \S.* \1{3,}$", rest) or re.match(r"^={5,}$", rest):
                    break
                out.append(rest)
            return "\n".join(out)
    raise AssertionError(f"no {title!r} section in:\n{output}")


def trace_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if re.match(r"^\s+\d+\s+\d+\.\d\d\s", line)]


def replay_line(text: str) -> str:
    found = re.findall(r"^replay: (.*)$", text, re.MULTILINE)
    assert found, text
    return found[-1]


# -- the fixture ----------------------------------------------------------------
def test_run_failure_shows_trace_failure_and_replay_command(pytester: pytest.Pytester) -> None:
    write(pytester, """
        def test_lost_update(races):
            r = races.run(setup, TASKS, inv, schedule=LOST)
            assert r is races.last
            assert r.replay_command == f"pytest test_example.py::test_lost_update --races-replay {r.token}"
            assert not r.failed
    """)
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    text = section(result.stdout.str())
    assert "FAILED (invariant)" in text
    assert "failure (invariant): invariant failed: lost update: n=1" in text
    assert len(trace_rows(text)) == 6
    assert re.search(r"read test_example\.py:\d+", text)
    assert re.fullmatch(r"pytest test_example\.py::test_lost_update --races-replay R1\.\S+", replay_line(text))


def test_passing_run_has_no_section(pytester: pytest.Pytester) -> None:
    write(pytester, """
        def test_ok(races):
            r = races.run(setup, TASKS, inv)
            assert not r.failed, r.report()
            assert r.options["seed"] == 0 and r.options["backend"] == "thread"
            assert "--races-replay" in r.report()
    """)
    result = pytester.runpytest("-rA")
    result.assert_outcomes(passed=1)
    assert "-- races --" not in result.stdout.str()


def test_section_shows_last_failed_result(pytester: pytest.Pytester) -> None:
    write(pytester, """
        def test_two_runs(races):
            bad = races.run(setup, TASKS, inv, schedule=LOST)
            good = races.run(setup, TASKS, inv)
            assert races.results == [bad, good]
            assert races.last is good and races.last_failed is bad
            assert False, "fail the test"
    """)
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    text = section(result.stdout.str())
    assert "(run 1 of 2 in this test)" in text
    assert "FAILED (invariant)" in text


def test_section_when_run_passed_but_test_failed(pytester: pytest.Pytester) -> None:
    write(pytester, """
        def test_expects_failure(races):
            r = races.run(setup, TASKS, inv)
            assert r.failed
    """)
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    assert ": passed" in section(result.stdout.str())


def test_replay_method(pytester: pytest.Pytester) -> None:
    write(pytester, """
        def test_replay(races):
            first = races.run(setup, TASKS, inv, schedule=LOST)
            again = races.replay(first.token, setup, TASKS, inv)
            assert again.failed and again.steps() == first.steps()
            assert again.token == first.token
            assert again.replay_command.endswith("--races-replay " + first.token)
            assert races.results == [first, again]
    """)
    pytester.runpytest().assert_outcomes(passed=1)


def test_check_without_explore_runs_one_schedule(pytester: pytest.Pytester) -> None:
    write(pytester, """
        import pytest

        @pytest.fixture(autouse=True)
        def no_explore(monkeypatch):
            # races resolves its names lazily: hide them by setting them to None
            monkeypatch.setattr(racelib, "explore", None)
            monkeypatch.setattr(racelib, "check", None)

        def test_check_passes(races):
            r = races.check(setup, TASKS, inv)
            assert not r.failed

        def test_check_raises(races):
            with pytest.raises(AssertionError) as info:
                races.check(setup, TASKS, inv, schedule=LOST)
            assert "lost update: n=1" in str(info.value)
            assert "--races-replay" in str(info.value)
            assert info.value.result is races.last

        def test_check_needs_explore_for_exploration_options(races):
            with pytest.raises(NotImplementedError, match="needs races.explore"):
                races.check(setup, TASKS, inv, max_schedules=5)

        def test_explore_missing(races):
            with pytest.raises(NotImplementedError, match="races.explore is not available"):
                races.explore(setup, TASKS, inv)
    """)
    pytester.runpytest().assert_outcomes(passed=4)


# A stand-in for races.explore / races.check (written by others): records what
# it was given and runs one schedule.
FAKE_EXPLORE = textwrap.dedent("""
    import pytest

    CALLS = []

    def fake_explore(setup, tasks, invariant=None, strategy="dfs", max_schedules=1000,
                     preemption_bound=None, seed=0, backend="thread", stop_on_first=True,
                     **run_options):
        CALLS.append(dict(strategy=strategy, max_schedules=max_schedules,
                          preemption_bound=preemption_bound, seed=seed, backend=backend,
                          stop_on_first=stop_on_first, **run_options))
        schedule = run_options.pop("schedule", None)
        run_options.pop("shard", None)
        return racelib.run(setup, tasks, invariant, schedule, backend, seed=seed, **run_options)

    @pytest.fixture(autouse=True)
    def fake(monkeypatch):
        CALLS.clear()
        monkeypatch.setattr(racelib, "explore", fake_explore, raising=False)
        monkeypatch.setattr(racelib, "check", None)  # resolved lazily: hide it
""")


def test_explore_gets_marker_and_option_defaults(pytester: pytest.Pytester) -> None:
    write(pytester, FAKE_EXPLORE + textwrap.dedent("""
        @pytest.mark.races(strategy="random", max_schedules=7, preemption_bound=2, shard=True)
        def test_marker(races):
            r = races.explore(setup, TASKS, inv)
            assert not r.failed
            assert CALLS == [dict(strategy="random", max_schedules=7, preemption_bound=2, seed=5,
                                  backend="thread", stop_on_first=True, shard=races.shard)]
            assert r.replay_command.startswith("pytest test_example.py::test_marker --races-replay ")

        def test_cli_default_and_explicit_wins(races):
            races.explore(setup, TASKS, inv)
            races.explore(setup, TASKS, inv, max_schedules=3, seed=9)
            assert [c["max_schedules"] for c in CALLS] == [11, 3]
            assert [c["seed"] for c in CALLS] == [5, 9]
            assert "shard" not in CALLS[0]

        def test_check_uses_explore(races):
            with pytest.raises(AssertionError, match="lost update"):
                races.check(setup, TASKS, inv, schedule=LOST)
            assert len(CALLS) == 1
    """))
    pytester.runpytest("--races-max-schedules", "11", "--races-seed", "5").assert_outcomes(passed=3)


def test_check_calls_races_check_when_present(pytester: pytest.Pytester) -> None:
    write(pytester, """
        import pytest

        class ScheduleFailure(AssertionError):
            def __init__(self, result):
                super().__init__(result.report())
                self.result = result

        def fake_check(setup, tasks, invariant=None, max_schedules=1000, **run_options):
            r = racelib.run(setup, tasks, invariant, **run_options)
            if r.failed:
                raise ScheduleFailure(r)
            return r

        @pytest.fixture(autouse=True)
        def fake(monkeypatch):
            monkeypatch.setattr(racelib, "check", fake_check, raising=False)

        def test_delegates(races):
            assert not races.check(setup, TASKS, inv).failed
            with pytest.raises(ScheduleFailure):
                races.check(setup, TASKS, inv, schedule=LOST)
            assert races.last.failed
            assert races.last.replay_command.startswith("pytest test_example.py::test_delegates")
    """)
    pytester.runpytest().assert_outcomes(passed=1)


def test_run_and_replay_get_only_run_options(pytester: pytest.Pytester) -> None:
    write(pytester, """
        import functools
        import pytest

        CALLS = []

        def spy(real):
            @functools.wraps(real)
            def wrapper(*args, **kwargs):
                CALLS.append(kwargs)
                return real(*args, **kwargs)
            return wrapper

        @pytest.fixture(autouse=True)
        def patched(monkeypatch):
            monkeypatch.setattr(racelib, "run", spy(racelib.run))
            monkeypatch.setattr(racelib, "replay", spy(racelib.replay))

        @pytest.mark.races(detect_races="report", strategy="pct", max_schedules=5, preemption_bound=1)
        def test_options(races):
            first = races.run(setup, TASKS, inv, schedule=LOST)
            races.replay(first.token, setup, TASKS, inv, max_steps=500)
            assert CALLS == [
                {"detect_races": "report", "seed": 0, "schedule": LOST},
                {"detect_races": "report", "seed": 0, "max_steps": 500},
            ]
    """)
    pytester.runpytest().assert_outcomes(passed=1)


@pytest.mark.skipif(not hasattr(racelib, "explore"), reason="races.explore is not there yet")
def test_real_explore_and_check(pytester: pytest.Pytester) -> None:
    write(pytester, """
        import pytest

        @pytest.mark.races(strategy="random", max_schedules=50, shard=True)
        def test_explore(races):
            r = races.explore(setup, TASKS, inv)
            assert not r.failed

        def test_check(races):
            with pytest.raises(racelib.ScheduleFailure) as info:
                races.check(setup, TASKS, inv)
            assert "replay: pytest test_example.py::test_check --races-replay R1." in str(info.value)
            assert info.value.result is races.last
    """)
    result = pytester.runpytest()
    result.assert_outcomes(failed=1, passed=1)
    text = section(result.stdout.str())
    assert "lost update" in text
    # the explored failure replays through pytest too
    command = shlex.split(replay_line(text))
    assert command[1] == "test_example.py::test_explore"
    again = pytester.runpytest(*command[1:])
    again.assert_outcomes(failed=1)
    assert trace_rows(section(again.stdout.str())) == trace_rows(text)


# -- the marker -----------------------------------------------------------------
def test_marker_applies_and_passes_strict_markers(pytester: pytest.Pytester) -> None:
    write(pytester, """
        import pytest

        @pytest.mark.races(backend="process", start_method="spawn")
        def test_process(races):
            r = races.run(setup, TASKS, inv)
            assert r.options["backend"] == "process"
            assert r.options["start_method"] == "spawn"
            assert races.options == {"backend": "process", "start_method": "spawn"}

        @pytest.mark.races(backend="process")
        def test_explicit_wins(races):
            assert races.run(setup, TASKS, inv, backend="thread").options["backend"] == "thread"

        pytestmark = pytest.mark.races(start_method="fork")

        @pytest.mark.races(backend="process")
        def test_module_marker_merges(races):
            assert races.options == {"backend": "process", "start_method": "fork"}
    """)
    result = pytester.runpytest_subprocess("--strict-markers", timeout=120)
    result.assert_outcomes(passed=3)


def test_marker_is_registered(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.races(strategy=*max_schedules=*): *"])


def test_marker_unknown_keyword_is_a_usage_error(pytester: pytest.Pytester) -> None:
    write(pytester, """
        import pytest

        @pytest.mark.races(max_schedule=5)
        def test_typo(races):
            pass

        @pytest.mark.races("thread")
        def test_positional():
            pass
    """)
    result = pytester.runpytest()
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines([
        "*UsageError: test_example.py::test_typo: @pytest.mark.races got unknown keyword 'max_schedule'*",
        "*UsageError: test_example.py::test_positional: @pytest.mark.races takes keyword arguments only*",
    ])


# -- options, ini and header ---------------------------------------------------------
OPTIONS_TEST = """
    def test_options(races):
        r = races.run(setup, TASKS, inv)
        print("OPTIONS", r.options["seed"], r.options["backend"], r.options["start_method"],
              races.options.get("max_schedules"))
"""


@pytest.mark.parametrize("where", ["cli", "ini"])
def test_options_and_ini(pytester: pytest.Pytester, where: str) -> None:
    write(pytester, OPTIONS_TEST)
    if where == "cli":
        args = ["--races-seed", "42", "--races-backend", "process", "--races-start-method", "spawn",
                "--races-max-schedules", "17"]
    else:
        pytester.makeini("""
            [pytest]
            races_seed = 42
            races_backend = process
            races_start_method = spawn
            races_max_schedules = 17
        """)
        args = []
    result = pytester.runpytest_subprocess("-s", *args, timeout=120)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["races: seed=42", "*OPTIONS 42 process spawn 17"])


def test_cli_beats_ini_and_marker_beats_cli(pytester: pytest.Pytester) -> None:
    write(pytester, """
        import pytest

        def test_cli(races):
            assert races.seed == 3 and races.options == {"backend": "thread"}

        @pytest.mark.races(backend="process")
        def test_marker(races):
            assert races.options == {"backend": "process"}
    """)
    pytester.makeini("""
        [pytest]
        races_seed = 1
        races_backend = process
    """)
    result = pytester.runpytest("--races-seed", "3", "--races-backend", "thread")
    result.assert_outcomes(passed=2)


def test_default_seed_in_header(pytester: pytest.Pytester) -> None:
    write(pytester, """
        def test_seed(races):
            assert races.seed == 0
    """)
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["races: seed=0"])


def test_seed_from_pytest_randomly(pytester: pytest.Pytester) -> None:
    # pytest-randomly stores its seed as the ``randomly_seed`` option: a stand-in does the same
    pytester.makeconftest("""
        def pytest_addoption(parser):
            parser.addoption("--randomly-seed", dest="randomly_seed", type=int, default=None)
    """)
    write(pytester, """
        def test_seed(races):
            assert races.seed == 1234
            assert races.run(setup, TASKS, inv).options["seed"] == 1234
    """)
    result = pytester.runpytest("--randomly-seed", "1234")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["races: seed=1234"])
    # an explicit --races-seed wins over it
    pytester.makepyfile(test_example=EXAMPLE + textwrap.dedent("""
        def test_seed(races):
            assert races.seed == 7
    """))
    pytester.runpytest("--randomly-seed", "1234", "--races-seed", "7").assert_outcomes(passed=1)


def test_string_seed(pytester: pytest.Pytester) -> None:
    write(pytester, """
        def test_seed(races):
            assert races.seed == "nightly"
            r = races.run(setup, TASKS, inv, schedule=LOST)
            assert "--races-seed nightly" in r.replay_command
    """)
    pytester.runpytest("--races-seed", "nightly").assert_outcomes(passed=1)


@pytest.mark.parametrize("line, message", [
    ("races_backend = threads", "races_backend = 'threads'*use one of thread, process"),
    ("races_start_method = vfork", "races_start_method = 'vfork'*"),
    ("races_max_schedules = many", "races_max_schedules = 'many'*whole number"),
    ("races_leak_check = sometimes", "races_leak_check = 'sometimes'*"),
])
def test_bad_ini_value_is_a_usage_error(pytester: pytest.Pytester, line: str, message: str) -> None:
    pytester.makeini(f"[pytest]\n{line}\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}*"])


def test_bad_cli_value_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--races-backend", "green")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--races-backend*invalid choice*green*"])


# -- replay through pytest ---------------------------------------------------------
def test_printed_replay_command_reproduces_the_trace(pytester: pytest.Pytester) -> None:
    write(pytester, """
        def test_lost_update(races):
            r = races.run(setup, TASKS, inv, schedule=LOST)
            assert not r.failed
    """)
    first = pytester.runpytest()
    first.assert_outcomes(failed=1)
    text = section(first.stdout.str())
    command = shlex.split(replay_line(text))
    assert command[0] == "pytest"
    token = command[command.index("--races-replay") + 1]
    # run exactly the printed command (as a fresh pytest process)
    again = pytester.runpytest_subprocess(*command[1:], timeout=120)
    again.assert_outcomes(failed=1)
    again.stdout.fnmatch_lines([f"races: seed=0, replaying {token}"])
    replayed = section(again.stdout.str())
    assert trace_rows(replayed) == trace_rows(text)
    assert len(trace_rows(text)) == 6
    assert "lost update: n=1" in replayed
    assert replay_line(replayed) == replay_line(text)


def test_replay_option_replays_run_explore_and_check(pytester: pytest.Pytester) -> None:
    write(pytester, """
        import pytest

        def test_token(races):
            r = races.run(setup, TASKS, inv, schedule=LOST)
            print("TOKEN", r.token)
    """, name="test_record")
    result = pytester.runpytest("-s")
    found = re.search(r"TOKEN (\S+)", result.stdout.str())
    assert found, result.stdout.str()
    token = found.group(1)
    write(pytester, """
        import pytest

        def test_run(races):
            r = races.run(setup, TASKS, inv)  # no schedule: the token decides
            assert r.failed and r.token == races.replay_token

        def test_explore(races):
            assert races.explore(setup, TASKS, inv).failed

        def test_check(races):
            with pytest.raises(AssertionError, match="lost update"):
                races.check(setup, TASKS, inv)
    """, name="test_replayed")
    pytester.runpytest("test_replayed.py", "--races-replay", token).assert_outcomes(passed=3)
    pytester.makeini(f"[pytest]\nraces_replay = {token}\n")
    pytester.runpytest("test_replayed.py").assert_outcomes(passed=3)


def test_bad_replay_token_is_reported(pytester: pytest.Pytester) -> None:
    write(pytester, """
        def test_run(races):
            races.run(setup, TASKS, inv)
    """)
    result = pytester.runpytest("--races-replay", "nonsense")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*ReplayError*'nonsense' is not a races replay token*"])


def test_replay_command_quotes_odd_node_ids(pytester: pytest.Pytester) -> None:
    write(pytester, """
        import pytest

        @pytest.mark.parametrize("label", ["two words"])
        def test_param(races, label):
            r = races.run(setup, TASKS, inv, schedule=LOST)
            assert not r.failed
    """)
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    command = replay_line(section(result.stdout.str()))
    assert command.startswith("pytest 'test_example.py::test_param[two words]' --races-replay R1.")
    again = pytester.runpytest(*shlex.split(command)[1:])
    again.assert_outcomes(failed=1)


def test_replay_command_is_relative_to_invocation_dir(pytester: pytest.Pytester) -> None:
    sub = pytester.mkpydir("pkg")
    (sub / "test_sub.py").write_text(EXAMPLE + textwrap.dedent("""
        def test_sub(races):
            assert not races.run(setup, TASKS, inv, schedule=LOST).failed
    """))
    result = pytester.runpytest()
    command = replay_line(section(result.stdout.str()))
    assert command.startswith("pytest pkg/test_sub.py::test_sub --races-replay ")


# -- reruns -------------------------------------------------------------------------
RERUN_MESSAGE = "*retrying a failure until it passes hides it*"


def test_rerun_warning_from_execution_count(pytester: pytest.Pytester) -> None:
    # what pytest-rerunfailures does to an item it runs again
    pytester.makeconftest("""
        import pytest

        @pytest.hookimpl(tryfirst=True)
        def pytest_runtest_setup(item):
            item.execution_count = 2
    """)
    write(pytester, """
        def test_rerun(races):
            pass

        def test_without_fixture():
            pass
    """)
    result = pytester.runpytest()
    result.assert_outcomes(passed=2, warnings=1)
    result.stdout.fnmatch_lines([
        "*test_rerun uses the races fixture and is being run again (attempt 2 by pytest-rerunfailures)*"
    ])
    result.stdout.fnmatch_lines([RERUN_MESSAGE])


def test_rerun_warning_with_rerunfailures(pytester: pytest.Pytester) -> None:
    pytest.importorskip("pytest_rerunfailures")
    write(pytester, """
        def test_flaky(races, tmp_path_factory):
            r = races.run(setup, TASKS, inv, schedule=LOST)
            assert not r.failed
    """)
    result = pytester.runpytest("--reruns", "1")
    outcomes = result.parseoutcomes()
    assert (outcomes["failed"], outcomes["rerun"]) == (1, 1), outcomes
    result.stdout.fnmatch_lines([RERUN_MESSAGE])


def test_rerun_warning_with_pytest_repeat(pytester: pytest.Pytester) -> None:
    pytest.importorskip("pytest_repeat")
    write(pytester, """
        def test_repeated(races):
            races.run(setup, TASKS, inv)
    """)
    result = pytester.runpytest("--count", "3")
    result.assert_outcomes(passed=3, warnings=2)
    result.stdout.fnmatch_lines(["*a repetition by pytest-repeat*"])
    result.stdout.fnmatch_lines([RERUN_MESSAGE])


def test_no_rerun_warning_on_first_run(pytester: pytest.Pytester) -> None:
    write(pytester, """
        def test_once(races):
            pass
    """)
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, warnings=0)
