"""pytest plugin for races (entry point ``pytest11``).

It gives tests a ``races`` fixture (a runner bound to the test: its seed, its
``@pytest.mark.races(...)`` options, the ``--races-*`` options), shows the
report of a failed run in a ``races`` section of the test's report with the
pytest command line that replays it, and checks that tests using the fixture
leave no child process or thread behind.

Kept light: nothing of the engine (``races._core``), nor psutil, is imported
here; the fixture and the checks import :mod:`races._pytest_support` when a
test uses them.
"""
from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from typing import Any

import pytest

MARKER_KEYS = (
    "strategy",
    "max_schedules",
    "backend",
    "start_method",
    "preemption_bound",
    "detect_races",
    "shard",
    "granularity",
)
BACKENDS = ("thread", "process")
START_METHODS = ("spawn", "forkserver", "fork")
LEAK_MODES = ("auto", "all", "off")

FIXTURE_KEY: pytest.StashKey[Any] = pytest.StashKey()
GUARD_KEY: pytest.StashKey[Any] = pytest.StashKey()
SECTIONS_KEY: pytest.StashKey[list[tuple[str, str, str]]] = pytest.StashKey()


# -- options ------------------------------------------------------------------
def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("races", "races: deterministic concurrency tests")
    group.addoption(
        "--races-seed", dest="races_seed", default=None, metavar="SEED",
        help="seed of every races run (default: ini races_seed, else pytest-randomly's seed, else 0)",
    )
    group.addoption(
        "--races-replay", dest="races_replay", default=None, metavar="TOKEN",
        help="make the races fixture's run/explore/check replay TOKEN (printed by a failed test)",
    )
    group.addoption(
        "--races-max-schedules", dest="races_max_schedules", default=None, type=int, metavar="N",
        help="default max_schedules of races.explore/check (ini: races_max_schedules)",
    )
    group.addoption(
        "--races-backend", dest="races_backend", default=None, choices=BACKENDS,
        help="default backend of the races fixture (ini: races_backend)",
    )
    group.addoption(
        "--races-start-method", dest="races_start_method", default=None, choices=START_METHODS,
        help="default start method of process runs (ini: races_start_method)",
    )
    group.addoption(
        "--races-leak-check", dest="races_leak_check", default=None, choices=LEAK_MODES,
        help="auto: tests using the races fixture fail when they leave a child process or a thread "
        "behind; all: every test; off: none (ini: races_leak_check)",
    )
    parser.addini("races_seed", "seed of every races run", default="")
    parser.addini("races_replay", "replay token for the races fixture (see --races-replay)", default="")
    parser.addini("races_max_schedules", "default max_schedules of races.explore/check", default="")
    parser.addini("races_backend", "default backend of the races fixture: thread or process", default="")
    parser.addini("races_start_method", "default start method: spawn, forkserver or fork", default="")
    parser.addini("races_leak_check", "auto, all or off (see --races-leak-check)", default="")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "races(strategy=, max_schedules=, backend=, start_method=, preemption_bound=, detect_races=, "
        "shard=, granularity=): default options of the races fixture for this test",
    )
    for name, choices in (
        ("backend", BACKENDS), ("start_method", START_METHODS), ("leak_check", LEAK_MODES)
    ):
        value = _setting(config, name)
        if value is not None and value not in choices:
            raise pytest.UsageError(
                f"races_{name} = {value!r} in the ini file: use one of {', '.join(choices)}"
            )
    value = _setting(config, "max_schedules")
    if value is not None and not str(value).isdigit():
        raise pytest.UsageError(f"races_max_schedules = {value!r}: give a whole number")


def _setting(config: pytest.Config, name: str) -> str | None:
    """A ``--races-NAME`` option, else the ``races_NAME`` ini value, else None."""
    value = config.getoption(f"races_{name}", None)
    if value is None:
        value = str(config.getini(f"races_{name}") or "").strip() or None
    return value


def resolve_seed(config: pytest.Config) -> int | str:
    """``--races-seed``, else ini ``races_seed``, else pytest-randomly's seed, else 0."""
    value: Any = _setting(config, "seed")
    if value is None:
        randomly = config.getoption("randomly_seed", None)
        if isinstance(randomly, int) and not isinstance(randomly, bool):
            value = randomly
    if value is None:
        return 0
    text = str(value).strip()
    try:
        return int(text)
    except ValueError:
        return text


def replay_token(config: pytest.Config) -> str | None:
    return _setting(config, "replay")


def leak_mode(config: pytest.Config) -> str:
    return _setting(config, "leak_check") or "auto"


def default_options(config: pytest.Config) -> dict[str, Any]:
    """Fixture defaults from the command line and the ini file (the marker comes on top)."""
    opts: dict[str, Any] = {}
    for name in ("backend", "start_method"):
        value = _setting(config, name)
        if value is not None:
            opts[name] = value
    value = _setting(config, "max_schedules")
    if value is not None:
        opts["max_schedules"] = int(value)
    return opts


def marker_options(item: pytest.Item) -> dict[str, Any]:
    """The keywords of every ``races`` marker of ``item``; the closest one wins."""
    opts: dict[str, Any] = {}
    for mark in reversed(list(item.iter_markers("races"))):
        opts.update(mark.kwargs)
    return opts


def check_markers(item: pytest.Item) -> None:
    for mark in item.iter_markers("races"):
        if mark.args:
            raise pytest.UsageError(
                f"{item.nodeid}: @pytest.mark.races takes keyword arguments only "
                f"({', '.join(MARKER_KEYS)}), not {mark.args!r}"
            )
        unknown = sorted(set(mark.kwargs) - set(MARKER_KEYS))
        if unknown:
            raise pytest.UsageError(
                f"{item.nodeid}: @pytest.mark.races got unknown keyword "
                f"{', '.join(repr(k) for k in unknown)}; it takes {', '.join(MARKER_KEYS)}"
            )


# -- header, fixtures, hooks --------------------------------------------------
def pytest_report_header(config: pytest.Config) -> list[str]:
    line = f"races: seed={resolve_seed(config)}"
    token = replay_token(config)
    if token:
        line += f", replaying {token}"
    return [line]


@pytest.fixture
def races(request: pytest.FixtureRequest) -> Any:
    """A races runner bound to this test: ``run``, ``explore``, ``check`` and
    ``replay`` with the test's seed and options applied as defaults."""
    from . import _pytest_support

    runner = _pytest_support.RacesFixture(request)
    request.node.stash[FIXTURE_KEY] = runner
    return runner


@pytest.fixture
def races_leak_check(request: pytest.FixtureRequest) -> Iterator[Any]:
    """Fail the test (as an error at teardown) when it leaves a child process
    or a thread behind; the leftover is killed.  Used automatically by tests
    that use the ``races`` fixture; request it (or autouse it in a conftest)
    to check other tests."""
    if leak_mode(request.config) == "off":
        yield None
        return
    from . import _pytest_support

    guard = _pytest_support.LeakGuard(request.node)
    request.node.stash[GUARD_KEY] = guard
    yield guard
    guard.finish()


@pytest.fixture(autouse=True)
def _races_auto_leak_check(request: pytest.FixtureRequest) -> None:
    mode = leak_mode(request.config)
    if mode == "all" or (mode == "auto" and "races" in request.fixturenames):
        request.getfixturevalue("races_leak_check")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    check_markers(item)


def _is_timeout(exc: BaseException | None) -> bool:
    return isinstance(exc, pytest.fail.Exception) and "pytest-timeout" in str(exc)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, None]:
    outcome = yield
    guard = item.stash.get(GUARD_KEY, None)
    excinfo = outcome.excinfo
    if guard is not None and excinfo is not None and _is_timeout(excinfo[1]):
        # kill the children now: the fixtures' teardown could hang on them
        text = guard.reap("pytest-timeout fired")
        if text:
            item.stash.setdefault(SECTIONS_KEY, []).append(("call", "races: reaped after timeout", text))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    for when, title, text in item.stash.get(SECTIONS_KEY, []):
        if when == report.when:
            report.sections.append((title, text))
    if report.when == "call" and report.failed:
        runner = item.stash.get(FIXTURE_KEY, None)
        races_text = runner.section_text() if runner is not None else None
        if races_text:
            report.sections.append(("races", races_text))


def _shard_from_env() -> tuple[int, int]:
    """``(worker_index, worker_count)`` under pytest-xdist, else ``(0, 1)``."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = os.environ.get("PYTEST_XDIST_WORKER_COUNT", "")
    if worker.startswith("gw") and worker[2:].isdigit() and count.isdigit() and int(count) > 0:
        return int(worker[2:]), int(count)
    return 0, 1
