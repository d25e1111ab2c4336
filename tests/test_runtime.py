"""The controlled runtime: schedules, traces, tokens, failures, in both backends."""
from __future__ import annotations

import pytest

import races
from tests import sample_tasks as st
from tests.leaks import task_processes, task_threads

BACKENDS = [
    pytest.param(("thread", None), id="thread"),
    pytest.param(("process", "forkserver"), id="process-forkserver"),
    pytest.param(("process", "spawn"), id="process-spawn"),
    pytest.param(("process", "fork"), id="process-fork"),
]


@pytest.fixture(params=BACKENDS)
def backend(request):
    name, method = request.param
    yield {"backend": name, "start_method": method}
    assert task_threads() == []
    assert task_processes() == []


def test_schedule_forces_lost_update(backend):
    state_kind = st.manager_setup if backend["backend"] == "process" else st.counter_setup
    inc = st.manager_increment if backend["backend"] == "process" else st.increment
    inv = st.manager_both_counted if backend["backend"] == "process" else st.both_counted
    result = races.run(state_kind, [inc, inc], inv, schedule=["t0:read", "t1:read"], **backend)
    assert result.failed
    assert result.failure.kind == "invariant"
    assert "lost update: n=1" in result.failure.message


def test_default_order_runs_tasks_one_after_another(backend):
    inc = st.manager_increment if backend["backend"] == "process" else st.increment
    setup = st.manager_setup if backend["backend"] == "process" else st.counter_setup
    inv = st.manager_both_counted if backend["backend"] == "process" else st.both_counted
    result = races.run(setup, [inc, inc], inv, **backend)
    assert not result.failed, result.report()
    tasks_in_order = [e.task for e in result.trace]
    first_t1 = tasks_in_order.index("t1")
    assert set(tasks_in_order[:first_t1]) == {"t0"}
    assert set(tasks_in_order[first_t1:]) == {"t1"}


def test_fixed_variant_reports_schedule_infeasible(backend):
    result = races.run(
        st.counter_setup, [st.increment_locked] * 2, st.both_counted,
        schedule=["t0:read", "t1:read"], **backend,
    )
    assert result.failure.kind == "schedule"
    message = result.failure.message
    assert "schedule step 2 't1:read'" in message
    assert "blocked" in message and "held by t0" in message
    assert "where each task stands" in message and "t0: at read" in message


def test_trace_records_task_point_and_location(backend):
    result = races.run(st.none_setup, {"a": st.just_points, "b": st.just_points}, **backend)
    assert not result.failed
    assert result.steps() == [
        ("a", "start"), ("a", "a"), ("a", "b"), ("a", "end"),
        ("b", "start"), ("b", "a"), ("b", "b"), ("b", "end"),
    ]
    point_a = result.trace[1]
    assert point_a.location.startswith("tests/sample_tasks.py:")
    assert point_a.task == "a" and point_a.name == "a"


def test_replay_gives_identical_trace_twenty_times(backend):
    first = races.run(
        st.counter_setup, [st.increment] * 3, st.both_counted,
        schedule=["t2:read", "t0:read", "t1", "t2"], **backend,
    )
    for _ in range(20):
        again = races.replay(first.token, st.counter_setup, [st.increment] * 3, st.both_counted, **backend)
        assert again.trace == first.trace
        assert again.token == first.token


def test_task_exception_is_captured_with_traceback(backend):
    result = races.run(st.none_setup, {"boom": st.raises_value_error}, **backend)
    assert result.failure.kind == "exception"
    assert result.failure.task == "boom"
    assert "ValueError: boom in task" in result.failure.message
    assert "sample_tasks.py" in result.failure.traceback
    assert "raise ValueError" in result.failure.traceback


def test_virtual_sleep_costs_no_wall_time(backend):
    result = races.run(st.none_setup, [st.long_sleeps], **backend)
    assert not result.failed
    assert [e.clock for e in result.trace if e.name == "after_sleep"] == [1000.0]
    assert result.trace[-1].clock == 1500.0


def test_manager_proxy_calls_are_sync_points(backend):
    result = races.run(st.manager_setup, [st.manager_increment], st.none_setup, **backend)
    names = [e.describe() for e in result.trace]
    assert names == ["start", "dict.__getitem__", "read", "dict.__setitem__", "end"]


@pytest.mark.parametrize("backend_name", ["forkserver", "spawn", "fork"])
def test_crash_reports_exit_code(backend_name):
    result = races.run(st.none_setup, [st.exits_hard], backend="process", start_method=backend_name)
    assert result.failure.kind == "crash"
    assert "exit code 3" in result.failure.message
    assert task_processes() == []


def test_sigkill_is_a_crash():
    result = races.run(st.none_setup, [st.killed_by_sigkill], backend="process", start_method="forkserver")
    assert result.failure.kind == "crash"
    assert "SIGKILL" in result.failure.message
    assert task_processes() == []


def test_process_stuck_in_uncontrolled_code_times_out_with_stack():
    result = races.run(
        st.none_setup, {"stuck": st.waits_on_raw_lock}, backend="process",
        start_method="forkserver", timeout=0.5,
    )
    assert result.failure.kind == "timeout"
    assert result.failure.task == "stuck"
    assert "within 0.5s" in result.failure.message
    assert "waits_on_raw_lock" in result.failure.traceback
    assert task_processes() == []


def test_thread_stuck_in_busy_loop_times_out_and_is_stopped():
    result = races.run(st.none_setup, {"spinner": st.spins_forever}, timeout=0.3)
    assert result.failure.kind == "timeout"
    assert "spins_forever" in result.failure.traceback
    assert task_threads() == []


def test_self_deadlock_names_both_acquisitions():
    result = races.run(st.counter_setup, {"t": st.double_acquire})
    assert result.failure.kind == "deadlock"
    message = result.failure.message
    assert "t waits for itself" in message
    lines = [e.location for e in result.trace if e.name == "acquire"]
    assert lines[0] in message
    assert "RLock" in message


def test_lock_order_inversion_deadlock_shows_the_cycle(backend):
    result = races.run(
        st.two_locks_setup, {"ab": st.take_a_then_b, "ba": st.take_b_then_a},
        schedule=["ab:has_a", "ba:has_b"], **backend,
    )
    assert result.failure.kind == "deadlock"
    assert "ab -> ba -> ab" in result.failure.message
    assert "ab holds A (acquired at tests/sample_tasks.py:" in result.failure.message
    assert "waits for B" in result.failure.message


def test_invariant_returning_false_fails():
    result = races.run(st.counter_setup, [st.increment], st.returns_false)
    assert result.failure.kind == "invariant"
    assert "returns_false() returned False" in result.failure.message


def test_invariant_raising_other_error_is_an_exception():
    result = races.run(st.counter_setup, [st.increment], st.invariant_raises)
    assert result.failure.kind == "exception"
    assert "KeyError" in result.failure.message


def test_tasks_list_is_named_t0_t1():
    result = races.run(st.counter_setup, [st.increment, st.increment])
    assert result.task_names == ["t0", "t1"]


def test_report_has_one_column_per_task_failure_and_replay_line():
    result = races.run(st.counter_setup, {"alice": st.increment, "bob": st.increment}, st.both_counted,
                       schedule=["alice:read", "bob:read"])
    report = result.report()
    header = next(line for line in report.splitlines() if line.lstrip().startswith("step"))
    assert header.index("alice") < header.index("bob")
    assert "failure (invariant)" in report
    assert f"races.replay({result.token!r}" in report


def test_point_and_lock_outside_the_harness():
    assert races.point("anything") is None
    lock = races.Lock()
    assert lock.acquire()
    assert lock.locked()
    assert not lock.acquire(blocking=False)
    lock.release()
    assert not lock.locked()


def test_seeded_random_is_deterministic():
    import random

    def setup():
        return []

    def draw(values):
        values.append(random.random())

    values = []
    races.run(lambda: values, [draw, draw], seed=7)
    again = []
    races.run(lambda: again, [draw, draw], seed=7)
    assert values == again and len(values) == 2


def test_warm_manager_server_runs_on_the_runs_cpu():
    # only one task runs at a time: its proxy calls wake the server on the same core
    import os

    from races._core import affinity, shared_manager

    cpu = affinity.choose()
    if cpu is None:
        pytest.skip("one CPU, or pinning is off: nothing to pin to")
    other = next(c for c in sorted(os.sched_getaffinity(0)) if c != cpu)
    shared_manager.shutdown()
    mask = affinity.pin(other)  # started from a thread pinned elsewhere (a run's, say)
    try:
        server = races.manager()._process.pid
    finally:
        affinity.restore(mask)
    try:
        assert os.sched_getaffinity(server) == {cpu}
    finally:
        shared_manager.shutdown()
