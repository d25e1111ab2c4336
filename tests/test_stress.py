"""``races.stress``: real threads and processes, real primitives, outcome tables.

Every assertion here holds by construction, not by luck: alignment is checked
through the order tasks log in, a delay through the time a task measured, an
oversell through an alignment that admits no other order.  Runs are few.
"""
from __future__ import annotations

import functools
import multiprocessing
import os
import sys
import threading
import time

import pytest

import races
import scenarios
from races.scenario import Scenario
from races.stress_mode import StressResult, fidelity, stress_scenario, stress_settings
from scenarios import ticket_oversell as ticket
from tests.leaks import task_processes, task_threads

# -- tasks (module level: process tasks must be importable) -----------------------


class Counter:
    def __init__(self) -> None:
        self.n = 0
        self.log: list[str] = []
        self.took: dict[str, float] = {}


def counter_setup():
    return Counter()


def bump(state):
    state.log.append("before")
    races.point("go")
    state.log.append("after")
    state.n += 1


def aligned_at_go(state):
    """Fails unless every task reached ``go`` before any passed it; the outcome is n."""
    first_after = state.log.index("after")
    assert "before" not in state.log[first_after:], f"a task passed 'go' before all arrived: {state.log}"
    return state.n


def timed(name, state):
    start = time.monotonic()
    races.point("slow")
    state.took[name] = time.monotonic() - start


def t0_delayed(state):
    return "t0 delayed" if state.took["t0"] >= 0.045 else f"t0 took {state.took['t0']:.3f}s"


def both_delayed(state):
    return "both delayed" if min(state.took.values()) >= 0.025 else f"took {state.took}"


def nothing_setup():
    return None


def block_forever(state):
    threading.Event().wait()


def finish(state):
    pass


def boom(state):
    raise ValueError("boom in a task")


def die(state):
    os._exit(3)


_events: list[threading.Event] = []


def event_setup():
    event = threading.Event()
    _events.append(event)
    return event


def wait_for_test(event):
    event.wait(30)  # the test sets it once stress() gave up on this thread


def sleep_a_second(state):
    start = time.monotonic()
    time.sleep(1.0)  # under sleep_scale=0.01: 10 ms for real
    took = time.monotonic() - start
    assert 0.009 <= took < 0.5, f"time.sleep(1.0) took {took:.3f}s"


def prefilled_setup():
    q = races.Queue()
    q.put("a")
    q.put("b")
    return q


def take_one(q):
    q.get(timeout=5)


def queue_drained(q):
    return "drained" if q.empty() else "items left"


def sleep_briefly():
    time.sleep(0.2)


def start_children(state):
    import multiprocessing

    ctx = multiprocessing.get_context("forkserver")
    ctx.Process(target=sleep_briefly, name="races-test-child").start()
    ctx.Process(target=block_forever_plain, name="races-test-daemon", daemon=True).start()


def block_forever_plain():
    threading.Event().wait()


def start_a_child_then_hang(path):
    import multiprocessing

    child = multiprocessing.get_context("forkserver").Process(target=block_forever_plain)
    child.start()
    with open(path, "w") as f:
        f.write(str(child.pid))
    threading.Event().wait()


def few_buyers(task, n=3):
    return {f"buyer{i}": functools.partial(task, i) for i in range(n)}


# -- leak checks ------------------------------------------------------------------


def stress_threads():
    return task_threads("races-stress:")


@pytest.fixture
def no_leaks():
    yield
    assert task_processes() == []
    assert stress_threads() == []


# -- alignment and the outcome table -----------------------------------------------


def test_aligned_runs_meet_at_the_point_and_tally_outcomes(no_leaks):
    result = races.stress(counter_setup, [bump] * 4, aligned_at_go, runs=12, align="go", align_timeout=5.0)
    text = result.report()
    for outcome, count in result.outcomes.items():
        assert any(line.split()[:2] == [repr(outcome), str(count)] for line in text.splitlines()), text
    assert isinstance(result, StressResult)
    assert result.runs == 12
    assert sum(result.outcomes.values()) == 12
    assert "invariant" not in result.outcomes, result.report()  # every run was aligned
    assert result.unaligned == 0
    assert set(result.outcomes) <= {1, 2, 3, 4}  # n: 4, or fewer when an increment was lost
    assert result.rate == 0.0 and result.first_failure is None


def test_align_dict_holds_only_the_tasks_named(no_leaks):
    result = races.stress(counter_setup, {"a": bump, "b": bump, "c": finish}, aligned_at_go, runs=5,
                          align={"a": "go", "b": "go"}, align_timeout=5.0)
    assert sum(result.outcomes.values()) == 5
    assert set(result.outcomes) <= {1, 2}


def test_report_is_the_outcome_table():
    result = StressResult(10, {"ok": 6, "invariant": 3, (1, 0): 1}, None)
    text = result.report()
    assert result.rate == pytest.approx(0.3)
    assert result.failures == 3
    for label, count in (("ok", 6), ("invariant", 3), ("(1, 0)", 1)):
        line = next(line for line in text.splitlines() if line.strip().startswith(label))
        assert str(count) in line
    assert "FAILURE" in text and "observed" in text
    assert "failure rate: 30.0% (3/10)" in text


# -- delays ---------------------------------------------------------------------------


def test_delay_for_one_task_is_a_real_sleep(no_leaks):
    tasks = {name: functools.partial(timed, name) for name in ("t0", "t1")}
    result = races.stress(counter_setup, tasks, t0_delayed, runs=3, delays={"t0:slow": 0.05})
    assert result.outcomes == {"t0 delayed": 3}, result.report()


def test_delay_for_every_task(no_leaks):
    tasks = {name: functools.partial(timed, name) for name in ("t0", "t1")}
    result = races.stress(counter_setup, tasks, both_delayed, runs=2, delays={"slow": 0.03})
    assert result.outcomes == {"both delayed": 2}, result.report()


def test_delay_widens_the_ticket_window(no_leaks):
    # Ten buyers released at once; 50 ms between read and write: oversold.
    result = stress_scenario(ticket.SCENARIO, runs=10, aligned=False, delays={"paying": 0.05})
    assert result.outcomes.get("invariant", 0) > 0, result.report()
    assert sum(result.outcomes.values()) == 10


def test_alignment_at_paying_oversells_every_time(no_leaks):
    # No buyer writes before every buyer has read: the oversell is certain.
    result = races.stress(ticket.setup, few_buyers(ticket.buyer_without_lock, 5), ticket.at_most_one_ticket_sold,
                          runs=5, align="paying", teardown=ticket.teardown, align_timeout=10.0)
    assert result.outcomes == {"invariant": 5}, result.report()
    assert result.rate == 1.0
    assert "tickets sold" in result.first_failure.message


@pytest.mark.parametrize("method", ["forkserver", "fork"])
def test_process_tasks_share_one_real_lock(no_leaks, method):
    # A races.Lock outside the harness is a threading.Lock: each process would hold
    # its own copy, and the aligned buyers would all sell.  stress shares a real one.
    buggy = races.stress(ticket.setup, few_buyers(ticket.buyer_without_lock, 2), ticket.at_most_one_ticket_sold,
                         runs=1, backend="process", start_method=method, align="paying",
                         teardown=ticket.teardown, align_timeout=10.0)
    assert buggy.outcomes == {"invariant": 1}, buggy.report()
    fixed = races.stress(ticket.setup, few_buyers(ticket.buyer_with_lock, 2), ticket.at_most_one_ticket_sold,
                         runs=1, backend="process", start_method=method, align="paying",
                         teardown=ticket.teardown, align_timeout=0.2)
    assert fixed.outcomes == {"ok": 1}, fixed.report()
    # the lock holder waits at 'paying' for a buyer blocked on that lock: the barrier times out
    assert fixed.unaligned == 1 and "not aligned" in fixed.report()


class Shared:
    def __init__(self) -> None:
        self.count = races.Value("i", 0)
        self.done = races.Event()
        self.queue = races.Queue()


def shared_setup():
    return Shared()


def add_one(state):
    with state.count.get_lock():
        state.count.value += 1
    state.queue.put("hi")
    state.done.set()


def all_counted(state):
    said = [state.queue.get(timeout=5) for _ in range(2)]
    assert said == ["hi"] * 2
    assert state.done.is_set()
    return state.count.value


def test_process_tasks_share_values_events_and_queues(no_leaks):
    result = races.stress(shared_setup, [add_one] * 2, all_counted, runs=1, backend="process")
    assert result.outcomes == {2: 1}, result.report()
    assert result.notes == []


def test_process_tasks_find_the_items_setup_put(no_leaks):
    result = races.stress(prefilled_setup, [take_one, take_one], queue_drained, runs=2, backend="process")
    assert result.outcomes == {"drained": 2}, result.report()


def test_processes_a_thread_task_starts_are_joined_or_terminated_as_at_exit(no_leaks):
    import multiprocessing

    def children():  # (active_children() lists a set: its order may change as children come and go)
        return sorted(child.pid for child in multiprocessing.active_children())

    before = children()
    result = races.stress(nothing_setup, [start_children], runs=2, timeout=5.0)
    assert result.outcomes == {"ok": 2}, result.report()
    assert children() == before  # the child joined, the daemon terminated


def test_a_fix_limit_skips_that_backend_with_its_reason():
    own = Scenario("own", counter_setup, {"t0": bump}, {"same": {"t0": bump}}, ["t0"], "invariant",
                   aligned_at_go, options={"stress": {"fix_limits": {"process": "cannot, because"}}})
    rows = fidelity(own, runs=1, buggy=False)
    by_backend = {row.backend: row for row in rows}
    assert by_backend["process"].runs == 0 and by_backend["process"].note == "skipped: cannot, because"
    assert by_backend["thread"].runs == 1 and by_backend["thread"].ok


# -- failures ---------------------------------------------------------------------------


def test_timeout_in_a_process_dumps_its_stack_and_kills_it(no_leaks):
    result = races.stress(nothing_setup, {"stuck": block_forever, "fine": finish}, runs=1, backend="process",
                          timeout=0.5)
    assert result.outcomes == {"timeout": 1}, result.report()
    failure = result.first_failure
    assert failure.kind == "timeout" and failure.task == "stuck"
    assert "were killed" in failure.message
    assert "block_forever" in failure.output
    assert "stuck" in result.report()


def test_timeout_kills_what_a_task_process_started_too(no_leaks, tmp_path):
    import psutil

    path = str(tmp_path / "child.pid")
    result = races.stress(lambda: path, [start_a_child_then_hang], runs=1, backend="process", timeout=3.0)
    assert result.outcomes == {"timeout": 1}, result.report()
    pid = int(open(path).read())
    try:
        child = psutil.Process(pid)
        status, parent = child.status(), child.ppid()
    except psutil.NoSuchProcess:
        status, parent = psutil.STATUS_DEAD, None
    assert status in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD), (
        f"the task's child {pid} outlived the run: {status}, parent {parent}")


def test_timeout_in_a_thread_says_it_cannot_be_killed():
    _events.clear()
    try:
        result = races.stress(event_setup, [wait_for_test, finish], runs=3, timeout=0.3)
        assert result.outcomes == {"timeout": 1}
        assert result.runs == 1 and result.requested == 3
        assert "cannot be killed" in result.first_failure.message
        assert "wait_for_test" in result.first_failure.output
        assert any("were not made" in note for note in result.notes)
    finally:
        for event in _events:
            event.set()
        for thread in threading.enumerate():
            if thread.name.startswith("races-stress:"):
                thread.join(5)
    assert stress_threads() == []


def test_exception_in_a_task_is_an_outcome(no_leaks):
    result = races.stress(nothing_setup, [boom, finish], runs=2)
    assert result.outcomes == {"exception": 2}
    assert "ValueError: boom in a task" in result.first_failure.message
    assert "boom in a task" in result.first_failure.output


def test_process_that_exits_is_a_crash(no_leaks):
    result = races.stress(nothing_setup, [die], runs=1, backend="process", start_method="fork")
    assert result.outcomes == {"crash": 1}
    assert "exited with code 3" in result.first_failure.message


def test_invariant_returning_false_fails(no_leaks):
    result = races.stress(nothing_setup, [finish], lambda state: False, runs=2)
    assert result.outcomes == {"invariant": 2} and result.rate == 1.0


BAD_OPTIONS = [
    ({"align": {"nobody": "go"}}, "unknown task"),
    ({"delays": {"nobody:go": 0.1}}, "unknown task"),
    ({"delays": {"go": -1}}, "non-negative"),
    ({"align": "a:b"}, "invalid"),
    ({"runs": 0}, "positive"),
    ({"backend": "fiber"}, "backend"),
    ({"sleep_scale": 0}, "sleep_scale"),
    ({"sleep_scale": "fast"}, "sleep_scale"),
]


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_sleep_scale_shortens_real_sleeps_in_tasks(no_leaks, backend):
    result = races.stress(nothing_setup, [sleep_a_second, sleep_a_second], runs=2, backend=backend,
                          sleep_scale=0.01)
    assert result.outcomes == {"ok": 2}, result.report()
    assert result.options["sleep_scale"] == 0.01
    assert time.sleep(0) is None and not hasattr(time.sleep, "__wrapped__")  # restored afterwards


def test_bad_options_are_refused():
    for kwargs, match in BAD_OPTIONS:
        with pytest.raises(ValueError, match=match):
            races.stress(nothing_setup, [finish], **kwargs)
    races.point("anything")  # no agent, no stress run: a no-op


# -- scenarios ----------------------------------------------------------------------


def test_settings_come_from_options_or_the_schedule():
    assert stress_settings(ticket.SCENARIO)["align"] == "paying"
    assert stress_settings(ticket.SCENARIO, aligned=False)["align"] is None
    assert stress_settings(ticket.SCENARIO, delayed=True)["delays"] == {"paying": 0.01}
    own = Scenario("own", counter_setup, {"t0": bump, "t1": bump}, {}, ["t0"], "invariant",
                   aligned_at_go, options={"stress": {"align": "go", "why_not": "it never fails"}})
    settings = stress_settings(own)
    assert settings["align"] == "go" and settings["why_not"] == "it never fails"
    result = stress_scenario(own, runs=2, align_timeout=5.0)
    assert "invariant" not in result.outcomes
    assert any("it never fails" in note for note in result.notes)


# A fix that fails here means the model missed something real.  Found so far,
# and fixed: double_acquire's invariant wanted p0's two grabs back to back;
# stress task processes were daemons (no children allowed); empty_check_race's
# get_nowait fix loses the dish while a multiprocessing.Queue's feeder still
# holds it (now the stale view, and the fix waits with a timeout).  A fix stress
# mode cannot run on a backend is declared by its scenario ("fix_limits").


def quick_options(scenario) -> dict:
    """Stress options for the quick check: real sleeps (interleaved_output's and
    early_read's time.sleep(3)) shortened a hundredfold, so the whole catalogue
    fits in CI; a fix must not lean on how long something sleeps anyway.  Real
    timeouts (queue_full's put(timeout=2)) stay whole."""
    return {"timeout": 20.0, "sleep_scale": 0.01}  # a bound on hangs, not a speed test


@pytest.mark.parametrize("backend", ["thread", "process"])
@pytest.mark.parametrize("name", scenarios.NAMES)
def test_fidelity_quick(no_leaks, name, backend):
    """The fidelity check in CI's quick mode: every fix, stressed once, does not
    fail; every bug stress can show shows within 20 aligned real runs (the
    full check, ``bench/bench_stress.py --fidelity``, allows 1,000)."""
    scenario = scenarios.load(name)
    if backend not in scenario.backends:
        pytest.skip(f"{name} does not run on the {backend} backend")
    rows = fidelity(scenario, runs=1, bug_runs=20, backends=(backend,), **quick_options(scenario))
    assert [row.variant for row in rows] == list(scenario.variants())
    bad = [(row.variant, row.verdict, row.outcomes, row.note) for row in rows if not row.ok]
    assert bad == []
    bug, settings = rows[0], stress_settings(scenario, backend=backend)
    if settings["why_not"]:
        assert bug.skipped and bug.note == f"skipped: {settings['why_not']}"
    else:  # shown, and the runs stopped there
        assert bug.outcomes[bug.expect] == 1 and bug.runs == sum(bug.outcomes.values())
        if "hangs" in scenario.options["stress"]:
            assert backend == "process" and bug.expect == "timeout"


def never_fails(state):
    pass


def how_many(state):
    return state.n


def test_a_bug_stress_never_shows_fails_the_fidelity_check(no_leaks):
    own = Scenario("own", counter_setup, {"t0": never_fails}, {"same": {"t0": never_fails}}, ["t0"], "invariant",
                   how_many, options={"stress": {"align": None, "delays": {}}})
    (bug, fix) = fidelity(own, runs=1, bug_runs=7, backends=("thread",))
    assert (bug.variant, bug.runs, bug.outcomes) == ("buggy", 7, {0: 7})
    assert not bug.ok and bug.verdict.startswith("NEVER SHOWN: the model reproduces 'invariant' but 7 aligned")
    assert fix.ok and fix.verdict == "ok"


def test_a_fix_that_fails_for_real_fails_the_fidelity_check(no_leaks):
    own = Scenario("own", nothing_setup, {"t0": boom}, {"broken": {"t0": boom}}, ["t0"], "exception",
                   options={"stress": {"align": None, "delays": {}}})
    rows = fidelity(own, runs=2, bug_runs=5, backends=("thread",))
    assert [(r.variant, r.ok) for r in rows] == [("buggy", True), ("fixed:broken", False)]
    assert rows[0].runs == 1 and rows[0].outcomes == {"exception": 1}  # stops once shown
    assert rows[1].outcomes == {"exception": 2} and rows[1].verdict.startswith("FAILS FOR REAL")


# -- what a run prints ------------------------------------------------------------------


def shout(state):
    print("a line on stdout")
    print("a line on stderr", file=sys.stderr)
    raise ValueError("shouted")


def print_from_a_child():
    print("a line from a child process")


def shout_through_a_child(state):
    child = multiprocessing.get_context("spawn").Process(target=print_from_a_child)
    child.start()
    child.join(30)


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_what_a_failing_run_printed_is_kept_with_it_and_off_the_terminal(no_leaks, capfd, backend):
    result = races.stress(nothing_setup, {"loud": shout, "parent": shout_through_a_child}, runs=2,
                          backend=backend)
    assert result.outcomes == {"exception": 2}
    printed = result.first_failure.captured
    for line in ("a line on stdout", "a line on stderr", "a line from a child process"):
        assert printed.count(line) == 1, printed  # the first run's, not the second's too
    if backend == "process":
        assert "--- task loud ---" in printed and "--- task parent ---" in printed
    assert "what run 0 printed:" in result.report()
    out, err = capfd.readouterr()
    assert "a line" not in out + err


def test_capture_output_false_lets_it_through(no_leaks, capfd):
    result = races.stress(nothing_setup, [shout], runs=1, capture_output=False)
    assert result.first_failure.captured == ""
    out, err = capfd.readouterr()
    assert "a line on stdout" in out and "a line on stderr" in err


# -- stopping at the first failure ---------------------------------------------------


def every_other_run_fails(state):
    _tally.append(1)
    assert len(_tally) % 2 == 0, "an odd run"


def odd_runs_return_one(state):
    _tally.append(1)
    return len(_tally) % 2


_tally: list[int] = []


def test_stop_on_first_stops_at_the_first_failing_run(no_leaks):
    _tally.clear()
    result = races.stress(nothing_setup, [finish], every_other_run_fails, runs=10, stop_on_first=True)
    assert result.runs == 1 and result.requested == 10 and result.outcomes == {"invariant": 1}
    _tally.clear()
    result = races.stress(nothing_setup, [finish], every_other_run_fails, runs=10, stop_on_first="exception")
    assert result.runs == 10 and result.outcomes == {"invariant": 5, "ok": 5}  # no run failed that way


def test_stop_on_first_is_about_failures_not_values(no_leaks):
    _tally.clear()
    result = races.stress(nothing_setup, [finish], odd_runs_return_one, runs=4, stop_on_first=True)
    assert result.runs == 4 and result.outcomes == {1: 2, 0: 2}  # 0 == False, but not a failure


def test_stop_on_first_must_be_a_bool_or_a_failure_kind():
    with pytest.raises(ValueError, match="stop_on_first must be True, False or a failure kind"):
        races.stress(nothing_setup, [finish], stop_on_first="deadlock")


def test_a_bug_that_hangs_is_a_timeout_on_processes_and_control_only_on_threads(no_leaks):
    from races.stress_mode import HANG_TIMEOUT

    scenario = scenarios.load("queue_full")
    on_threads, on_processes = (stress_settings(scenario, backend=b) for b in ("thread", "process"))
    assert on_threads["why_not"].startswith("its fourth put would hang a real run for good")
    assert on_processes["why_not"] is None and on_processes["shows_as"] == "timeout"
    result = stress_scenario(scenario, "buggy", runs=1, backend="process", timeout=30.0)
    assert result.outcomes == {"timeout": 1} and result.options["timeout"] == HANG_TIMEOUT
    assert "in make_rose" in result.first_failure.output  # the stack of the task stuck in its put
    assert result.options["align"] is None  # "cook:put" in the schedule is the queue's put, not a point
    fixed = stress_scenario(scenario, "fixed:consumer", runs=1, backend="process", timeout=30.0)
    assert fixed.outcomes == {"ok": 1} and fixed.options["timeout"] == 30.0


def test_why_not_can_name_the_backends_it_holds_for():
    scenario = scenarios.load("daemon_killed")
    assert "never cut off for real" in stress_settings(scenario, backend="thread")["why_not"]
    assert stress_settings(scenario, backend="process")["why_not"] is None
