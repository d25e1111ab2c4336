"""The pytest plugin's process hygiene: the leak check, reaping children when
pytest-timeout fires, pytest-xdist workers, and the plugin staying light."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import psutil
import pytest

from races import _pytest_support
from tests.plugin_example import EXAMPLE

TIMEOUT = 120  # bound of every pytest subprocess


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


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


# -- the plugin stays light ----------------------------------------------------
def test_plugin_module_imports_no_engine() -> None:
    code = (
        "import sys, pytest, races\n"
        "before = set(sys.modules)\n"
        "import races.plugin\n"
        "print(sorted(set(sys.modules) - before))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['races.plugin']"


def test_support_is_not_imported_by_tests_without_the_fixture(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="""
        import sys

        def test_plain():
            assert "races._pytest_support" not in sys.modules
            assert "psutil" not in sys.modules
    """)
    pytester.runpytest_subprocess("-p", "no:xdist", timeout=TIMEOUT).assert_outcomes(passed=1)


# -- the leak check -------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # its SystemExit
def test_leaked_thread_is_an_error_and_is_stopped(pytester: pytest.Pytester) -> None:
    write(pytester, """
        import threading

        NEVER = threading.Event()

        def spin():
            while not NEVER.wait(0.01):
                pass

        def test_leaky(races):
            threading.Thread(target=spin, name="leaky-spinner").start()
    """)
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines([
        "*races leak check: test_example.py::test_leaky left 1 thread(s) (asked to exit) behind:*",
        "*thread 'leaky-spinner' (daemon=False*",
        "*in spin*",
    ])
    assert "still running" not in result.stdout.str()
    assert not [t for t in threading.enumerate() if t.name == "leaky-spinner"]


def test_leaked_process_is_an_error_and_is_killed(pytester: pytest.Pytester) -> None:
    write(pytester, """
        import multiprocessing
        import threading

        def hang():
            threading.Event().wait()

        def test_leaky(races):
            p = multiprocessing.get_context("spawn").Process(target=hang, name="leaky-child")
            p.start()
            with open("pid.txt", "w") as f:
                f.write(str(p.pid))
    """)
    result = pytester.runpytest_subprocess(timeout=TIMEOUT)
    result.assert_outcomes(passed=1, errors=1)
    pid = int((pytester.path / "pid.txt").read_text())
    result.stdout.fnmatch_lines([
        "*races leak check: test_example.py::test_leaky left 1 child process(es) (killed) behind:*",
        f"*process {pid}: *multiprocessing*",
    ])
    assert gone(pid)


def test_thread_finishing_within_the_grace_is_no_leak(pytester: pytest.Pytester) -> None:
    write(pytester, """
        import threading
        import pytest

        GO = threading.Event()

        @pytest.fixture
        def release():
            yield
            GO.set()  # the thread ends soon after; nobody joins it

        def test_slow_thread(races, release):
            threading.Thread(target=GO.wait, name="finishing").start()
    """)
    pytester.runpytest().assert_outcomes(passed=1)


LEAK_MODES = """
    import threading
    import pytest

    STOP = threading.Event()
    BEFORE = threading.Thread(target=STOP.wait, name="started-at-import")
    BEFORE.start()  # before any test: never counted

    @pytest.fixture(scope="session", autouse=True)
    def stop_threads():
        yield
        STOP.set()

    def test_no_fixture():
        threading.Thread(target=STOP.wait, name="leak-without-fixture").start()

    def test_with_fixture(races):
        threading.Thread(target=STOP.wait, name="leak-with-fixture").start()
"""


@pytest.mark.parametrize("mode, errors", [
    ("auto", ["leak-with-fixture"]),
    ("all", ["leak-without-fixture", "leak-with-fixture"]),
    ("off", []),
])
def test_leak_check_modes(pytester: pytest.Pytester, mode: str, errors: list) -> None:
    write(pytester, LEAK_MODES)
    result = pytester.runpytest_subprocess("-p", "no:randomly", f"--races-leak-check={mode}", timeout=TIMEOUT)
    result.assert_outcomes(passed=2, errors=len(errors))
    out = result.stdout.str()
    for name in ("leak-without-fixture", "leak-with-fixture"):
        assert (f"thread '{name}'" in out) == (name in errors)
    assert "started-at-import" not in out


def test_leak_check_fixture_for_any_test(pytester: pytest.Pytester) -> None:
    write(pytester, """
        import threading
        import pytest

        STOP = threading.Event()

        @pytest.fixture(scope="session", autouse=True)
        def stop_threads():
            yield
            STOP.set()

        def test_opted_in(races_leak_check):
            threading.Thread(target=STOP.wait, name="opted-in-leak").start()
    """)
    result = pytester.runpytest_subprocess(timeout=TIMEOUT)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*thread 'opted-in-leak'*"])


def test_helpers_and_template_processes_are_not_leaks(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("""
        import pytest

        TEMPLATES = []

        @pytest.fixture(scope="session", autouse=True)
        def kill_templates():
            yield
            for p in TEMPLATES:
                p.kill()
                p.wait(30)
    """)
    write(pytester, """
        import subprocess
        import sys
        import pytest
        import conftest

        @pytest.mark.races(backend="process", start_method="forkserver")
        def test_forkserver(races):
            assert not races.run(setup, TASKS, None).failed

        @pytest.mark.races(backend="process", start_method="spawn")
        def test_spawn(races):
            assert not races.run(setup, TASKS, None).failed

        def test_template(races):
            code = "import threading; threading.Event().wait()"
            conftest.TEMPLATES.append(subprocess.Popen([sys.executable, "-c", code, "races-template"]))

        def manager_setup():
            return racelib.manager().dict(n=0)

        def bump(d):
            d["n"] = d["n"] + 1

        @pytest.mark.races(backend="process", start_method="spawn")
        def test_shared_manager(races):
            if hasattr(racelib, "manager"):  # the harness's warm Manager server stays up
                assert not races.run(manager_setup, {"a": bump}, None).failed
    """)
    result = pytester.runpytest_subprocess(timeout=TIMEOUT)
    result.assert_outcomes(passed=4)


# -- pytest-timeout ---------------------------------------------------------------------
def test_hung_child_is_reaped_when_pytest_timeout_fires(pytester: pytest.Pytester) -> None:
    write(pytester, """
        import multiprocessing
        import threading

        def hang():
            threading.Event().wait()

        def test_hangs(races):
            p = multiprocessing.get_context("spawn").Process(target=hang, name="hung-child")
            p.start()
            with open("pid.txt", "w") as f:
                f.write(str(p.pid))
            p.join()  # never returns: pytest-timeout fires
    """)
    result = pytester.runpytest_subprocess("--timeout=5", "--timeout-method=signal", timeout=TIMEOUT)
    result.assert_outcomes(failed=1)
    pid = int((pytester.path / "pid.txt").read_text())
    out = result.stdout.str()
    assert "Timeout (>5.0s) from pytest-timeout" in out
    result.stdout.fnmatch_lines([
        "*- races: reaped after timeout -*",
        "pytest-timeout fired: killed 1 child process(es) of the test:",
        f"  process {pid}: *multiprocessing*",
    ])
    if _pytest_support._py_spy() and "py-spy failed" not in out:
        assert "hang" in out  # the child's stack, dumped before the kill
    assert gone(pid)


# -- pytest-xdist -------------------------------------------------------------------------
def test_under_xdist(pytester: pytest.Pytester) -> None:
    write(pytester, """
        import os
        import pytest

        @pytest.mark.parametrize("i", range(4))
        def test_shard(races, i):
            index, count = races.shard
            assert count == 2 and index in (0, 1)
            assert os.environ["PYTEST_XDIST_WORKER"] == f"gw{index}"
            mine = races.tmp_path / "name"
            mine.write_text(str(i))
            with open(f"seen-{i}.txt", "w") as f:
                f.write(str(races.tmp_path))

        def test_lost_update(races):
            assert not races.run(setup, TASKS, inv, schedule=LOST).failed
    """)
    result = pytester.runpytest_subprocess("-n", "2", timeout=TIMEOUT)
    result.assert_outcomes(passed=4, failed=1)
    seen = {Path(p.read_text()) for p in pytester.path.glob("seen-*.txt")}
    assert len(seen) == 4
    result.stdout.fnmatch_lines([
        "*- races -*",
        "failure (invariant): invariant failed: lost update: n=1",
        "replay: pytest test_example.py::test_lost_update --races-replay R1.*",
    ])


def test_shard_without_xdist(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    monkeypatch.delenv("PYTEST_XDIST_WORKER_COUNT", raising=False)
    write(pytester, """
        def test_shard(races):
            assert races.shard == (0, 1)
    """)
    pytester.runpytest("-p", "no:xdist").assert_outcomes(passed=1)
