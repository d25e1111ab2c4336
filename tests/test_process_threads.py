"""A ``threading.Thread`` started from a task is a controlled task in both
backends: in the process backend it runs inside its task's process (sharing
its memory) with its own line to the controller, and the threading primitives
of a task process are controlled too."""
from __future__ import annotations

import os
import queue
import signal
import threading

import pytest

import races
from tests.leaks import task_processes

METHODS = ["spawn", "forkserver", "fork"]


def nothing():
    return None


class Box:
    def __init__(self):
        self.n = 0


# -- a lost update between two threads of one task ----------------------------------


def two_bumpers(state):
    box = Box()

    def bump():
        seen = box.n
        races.point("read")
        box.n = seen + 1

    threads = [threading.Thread(target=bump) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert box.n == 2, f"lost update: n == {box.n}"


LOST_UPDATE = ["main:join", "main/Thread-1 (bump):read", "main/Thread-2 (bump):read"]


def test_lost_update_between_threads_is_forced_every_time(backend):
    for _ in range(5):
        result = races.run(nothing, {"main": two_bumpers}, schedule=LOST_UPDATE, **backend)
        assert result.failure is not None and result.failure.kind == "exception", result.report()
        assert "lost update: n == 1" in result.failure.message
        assert result.task_names == ["main", "main/Thread-1 (bump)", "main/Thread-2 (bump)"]


def test_lost_update_passes_in_the_default_order(backend):
    result = races.run(nothing, {"main": two_bumpers}, **backend)
    assert not result.failed, result.report()
    starts = [e for e in result.trace if e.kind == "thread" and e.name == "start"]
    assert [e.note for e in starts] == ["started main/Thread-1 (bump)", "started main/Thread-2 (bump)"]
    assert [e.describe() for e in result.trace if e.task == "main/Thread-1 (bump)"] == ["start", "read", "end"]


@pytest.mark.parametrize("method", METHODS)
def test_every_start_method_runs_threads_in_the_task_process(method):
    result = races.run(nothing, {"main": two_bumpers}, schedule=LOST_UPDATE, backend="process", start_method=method)
    assert result.failure is not None and "lost update" in result.failure.message, result.report()
    assert task_processes() == []


def test_dfs_finds_the_lost_update(backend):
    result = races.explore(nothing, {"main": two_bumpers}, strategy="dfs", **backend)
    assert result.failed and "lost update" in result.failure.message, result.report()
    again = races.replay(result.token, nothing, {"main": two_bumpers}, **backend)
    assert again.failed and "lost update" in again.failure.message


@pytest.mark.parametrize("strategy", ["dfs", "random", "pct"])
def test_exploration_is_deterministic(strategy):
    def tokens():
        seen = []
        races.explore(nothing, {"main": two_bumpers}, strategy=strategy, seed=7, max_schedules=6,
                      stop_on_first=False, backend="process", start_method="forkserver",
                      on_result=lambda r: seen.append((r.token, [(e.task, e.name) for e in r.trace])))
        return seen

    first = tokens()
    assert first and first == tokens()
    assert task_processes() == []


# -- a deadlock between two threads of one task ---------------------------------------


def crossed_locks(state):
    a = threading.Lock()
    b = threading.Lock()

    def one():
        with a:
            races.point("has_a")
            with b:
                pass

    def two():
        with b:
            races.point("has_b")
            with a:
                pass

    t1 = threading.Thread(target=one)
    t2 = threading.Thread(target=two)
    t1.start()
    t2.start()
    t1.join()
    t2.join()


def test_deadlock_between_threads_names_the_cycle(backend):
    schedule = ["main:join", "main/Thread-1 (one):has_a", "main/Thread-2 (two):has_b"]
    result = races.run(nothing, {"main": crossed_locks}, schedule=schedule, **backend)
    assert result.failure is not None and result.failure.kind == "deadlock", result.report()
    message = result.failure.message
    assert "main/Thread-1 (one) -> main/Thread-2 (two) -> main/Thread-1 (one)" in message
    acquires = {e.location for e in result.trace if e.name == "acquire"}
    assert len(acquires) == 2 and all(where in message for where in acquires)
    assert "test_process_threads.py" in message


# -- join, is_alive, daemon ------------------------------------------------------------


def lifecycle(state):
    go = threading.Event()
    seen = []

    def waiter():
        go.wait()
        seen.append("ran")

    t = threading.Thread(target=waiter)
    assert not t.is_alive() and not t.daemon
    with_timeout_error = None
    try:
        t.join()
    except RuntimeError as exc:
        with_timeout_error = str(exc)
    assert with_timeout_error == "cannot join thread before it is started"
    t.start()
    assert t.is_alive()
    t.join(timeout=0.5)  # virtual time runs out: still alive
    assert t.is_alive()
    try:
        t.daemon = True
    except RuntimeError:
        pass
    else:
        raise AssertionError("daemon was set on a started thread")
    try:
        t.start()
    except RuntimeError as exc:
        assert "only be started once" in str(exc)
    else:
        raise AssertionError("a thread started twice")
    go.set()
    t.join()
    assert not t.is_alive()
    assert seen == ["ran"]

    inherited = []

    def daemon_parent():
        child = threading.Thread(target=nothing)
        inherited.append(child.daemon)
        child.start()
        child.join()

    d = threading.Thread(target=daemon_parent, daemon=True)
    d.start()
    d.join()
    assert inherited == [True]  # a daemon's threads are daemons, as in CPython


def test_join_is_alive_and_daemon(backend):
    result = races.run(nothing, {"main": lifecycle}, **backend)
    assert not result.failed, result.report()
    assert any(e.note == "timed out after 0.5s" for e in result.trace), result.report()


def daemon_left_behind(state):
    never = threading.Event()

    def forever():
        races.point("working")
        never.wait()
        races.point("unreachable")

    threading.Thread(target=forever, daemon=True).start()
    races.point("main_done")


def test_daemon_thread_is_cut_off_when_the_program_ends(backend):
    result = races.run(nothing, {"main": daemon_left_behind}, **backend)
    assert not result.failed, result.report()
    cut = [e for e in result.trace if e.kind == "terminated"]
    assert [e.task for e in cut] == ["main/Thread-1 (forever)"]
    assert "daemon thread at exit" in cut[0].name
    lost = [w for w in result.warnings if "main/Thread-1 (forever)" in w]
    assert lost and 'races.point("unreachable")' in lost[0], result.warnings


def non_daemon_outlives_main(state):
    q = state

    def late():
        races.point("late")
        q.put("late work")

    threading.Thread(target=late).start()
    races.point("main_returns")


def parent_of_threaded_process(state):
    import multiprocessing

    q = multiprocessing.Queue()
    p = multiprocessing.Process(target=non_daemon_outlives_main, args=(q,))
    p.start()
    p.join()  # the process ends only when its non-daemon thread has ended
    assert q.get_nowait() == "late work"
    assert p.exitcode == 0


@pytest.mark.parametrize("method", METHODS)
def test_a_process_task_ends_after_its_non_daemon_threads(method):
    result = races.run(nothing, {"main": parent_of_threaded_process}, backend="process", start_method=method)
    assert not result.failed, result.report()
    child = [e.describe() for e in result.trace if e.task == "main/Process-1"]
    assert child[-2:] == ["Thread-1 (late).join", "end"]
    assert [e.location for e in result.trace if e.task == "main/Process-1"][-2] == "threading._shutdown"
    assert task_processes() == []


# -- failures ---------------------------------------------------------------------------


def thread_raises(state):
    def bad():
        races.point("about_to_fail")
        raise ValueError("boom in a thread")

    t = threading.Thread(target=bad)
    t.start()
    t.join()


def test_an_exception_in_a_thread_is_reported_with_its_traceback(backend):
    result = races.run(nothing, {"main": thread_raises}, **backend)
    assert result.failure is not None and result.failure.kind == "exception", result.report()
    assert result.failure.task == "main/Thread-1 (bad)"
    assert "ValueError: boom in a thread" in result.failure.message
    assert 'raise ValueError("boom in a thread")' in result.failure.traceback
    assert "in bad" in result.failure.traceback


def thread_exits(state):
    def bad():
        races.point("before_exit")
        os._exit(7)

    t = threading.Thread(target=bad)
    t.start()
    t.join()


@pytest.mark.parametrize("method", METHODS)
def test_os_exit_from_a_thread_is_a_crash_of_its_process(method):
    result = races.run(nothing, {"main": thread_exits}, backend="process", start_method=method, timeout=5)
    assert result.failure is not None and result.failure.kind == "crash", result.report()
    assert result.failure.task == "main/Thread-1 (bad)"
    assert "exit code 7" in result.failure.message
    assert task_processes() == []


def killed_while_threads_wait(state):
    go = threading.Event()

    def waiter():
        go.wait()

    threads = [threading.Thread(target=waiter) for _ in range(2)]
    for t in threads:
        t.start()
    os.kill(os.getpid(), signal.SIGKILL)


def test_sigkill_ends_every_thread_of_the_process():
    result = races.run(nothing, {"main": killed_while_threads_wait}, backend="process", timeout=5)
    assert result.failure is not None and result.failure.kind == "crash", result.report()
    assert "SIGKILL" in result.failure.message
    assert task_processes() == []


def thread_stuck_in_real_code(state):
    import _thread

    def stuck():
        races.point("before")
        lock = _thread.allocate_lock()
        lock.acquire()
        lock.acquire()  # uncontrolled: never returns

    t = threading.Thread(target=stuck)
    t.start()
    t.join()


def test_a_stuck_thread_times_out_with_the_stacks_of_its_process():
    result = races.run(nothing, {"main": thread_stuck_in_real_code}, backend="process", timeout=0.5)
    assert result.failure is not None and result.failure.kind == "timeout", result.report()
    assert result.failure.task == "main/Thread-1 (stuck)"
    assert "in stuck" in result.failure.traceback
    assert task_processes() == []


def terminates_threaded_child(state):
    import multiprocessing

    p = multiprocessing.Process(target=daemon_and_worker)
    p.start()
    races.point("child_started")
    p.terminate()
    p.join()
    assert p.exitcode == -signal.SIGTERM


def daemon_and_worker():
    never = threading.Event()
    threading.Thread(target=never.wait).start()
    never.wait()


def test_terminating_a_process_ends_its_threads():
    result = races.run(nothing, {"main": terminates_threaded_child}, backend="process",
                       schedule=["main:child_started", "main/Process-1", "main/Process-1"])
    assert not result.failed, result.report()
    cut = {e.task for e in result.trace if e.kind == "terminated"}
    assert cut == {"main/Process-1", "main/Process-1/Thread-1 (wait)"}, result.report()
    assert task_processes() == []


# -- threading primitives of a task process are controlled -----------------------------


def primitives_in_a_process(state):
    made = [threading.Lock(), threading.RLock(), threading.Semaphore(), threading.BoundedSemaphore(),
            threading.Event(), threading.Condition(), threading.Barrier(2), queue.Queue(), queue.SimpleQueue()]
    outside = [type(m).__module__ for m in made if not type(m).__module__.startswith("races.")]
    assert not outside, outside

    q = queue.Queue()
    results = []

    def consumer():
        while True:
            item = q.get()
            if item is None:
                return
            results.append(item)

    t = threading.Thread(target=consumer)
    t.start()
    shared = [1, 2]
    for item in (0, shared, lambda: "not picklable"):
        q.put(item)
    q.put(None)
    t.join()
    # the items stay in the process: the very objects, picklable or not
    assert results[0] == 0 and results[1] is shared and results[2]() == "not picklable"
    simple = queue.SimpleQueue()
    simple.put_nowait(shared)
    assert simple.get() is shared


def test_threading_primitives_of_a_task_process_are_controlled():
    result = races.run(nothing, {"main": primitives_in_a_process}, backend="process")
    assert not result.failed, result.report()
    assert any(e.kind == "queue" and e.task == "main/Thread-1 (consumer)" for e in result.trace)


def nested_threads(state):
    out = []

    def leaf():
        out.append(threading.current_thread().name)

    def middle():
        t = threading.Thread(target=leaf)
        t.start()
        t.join()

    t = threading.Thread(target=middle)
    t.start()
    t.join()
    assert len(out) == 1


def test_threads_started_from_threads(backend):
    result = races.run(nothing, {"main": nested_threads}, **backend)
    assert not result.failed, result.report()
    assert result.task_names == ["main", "main/Thread-1 (middle)", "main/Thread-1 (middle)/Thread-1 (leaf)"]


def setup_with_a_lock():
    import multiprocessing

    return {"lock": multiprocessing.Lock()}


def own_lock_while_holding_setups(state):
    mine = threading.Lock()  # made in the task's process, whose id counters start afresh
    with state["lock"]:
        assert mine.acquire(blocking=False), "the task's new lock is the one setup() made"
        mine.release()


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_a_task_named_main_never_reuses_an_id_setup_made(method):
    result = races.run(setup_with_a_lock, {"main": own_lock_while_holding_setups},
                       backend="process", start_method=method)
    assert not result.failed, result.report()


def test_both_backends_give_the_same_trace():
    def steps(**options):
        result = races.run(nothing, {"main": two_bumpers}, schedule=LOST_UPDATE, **options)
        assert "lost update: n == 1" in result.failure.message
        return [(e.task, e.kind, e.name, e.label, e.location, e.note) for e in result.trace]

    assert steps(backend="thread") == steps(backend="process", start_method="forkserver")
