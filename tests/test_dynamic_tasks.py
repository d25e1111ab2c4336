"""Tasks started from tasks: multiprocessing.Process / threading.Thread children
become controlled tasks (patch mode), in the thread and process backends."""
from __future__ import annotations

import multiprocessing
import threading


import races
from races.primitives.process import Process as RacesProcess


def nothing():
    return None


# -- module-level tasks --------------------------------------------------------------


def child_work(lock, q):
    with lock:
        q.put("from child")
    races.point("child_done")


def parent_joins(state):
    lock = multiprocessing.Lock()
    q = multiprocessing.Queue()
    p = multiprocessing.Process(target=child_work, args=(lock, q))
    assert p.exitcode is None
    p.start()
    assert q.get() == "from child"
    p.join()
    assert not p.is_alive()
    assert p.exitcode == 0
    assert p.pid is not None


def test_child_process_is_a_task_with_a_logical_parent(backend):
    result = races.run(nothing, {"main": parent_joins}, **backend)
    assert not result.failed, result.report()
    assert "main/Process-1" in result.task_names
    starts = [e for e in result.trace if e.name == "start" and e.kind == "process"]
    assert starts and starts[0].task == "main" and "started main/Process-1" in starts[0].note
    child_steps = [e.describe() for e in result.trace if e.task == "main/Process-1"]
    assert child_steps[0] == "start" and "child_done" in child_steps


def grandchild():
    races.point("deep")


def middle():
    p = multiprocessing.Process(target=grandchild, name="leaf")
    p.start()
    p.join()


def nests(state):
    p = multiprocessing.Process(target=middle)
    p.start()
    p.join()


def test_children_of_children_have_deterministic_names(backend):
    first = races.run(nothing, {"main": nests}, **backend)
    assert not first.failed, first.report()
    assert first.task_names == ["main", "main/Process-1", "main/Process-1/leaf"]
    again = races.run(nothing, {"main": nests}, **backend)
    assert again.steps() == first.steps()


def test_replay_of_a_run_with_children():
    result = races.run(nothing, {"main": nests})
    replayed = races.replay(result.token, nothing, {"main": nests})
    assert replayed.steps() == result.steps()


# -- daemons ---------------------------------------------------------------------------


def daemon_body():
    races.point("daemon_started")
    races.point("daemon_second")


def starts_daemon_and_ends(state):
    p = multiprocessing.Process(target=daemon_body, daemon=True)
    p.start()
    races.point("main_goes_on")


def test_daemon_is_terminated_when_its_main_ends_and_its_work_is_reported_lost(backend):
    result = races.run(nothing, {"main": starts_daemon_and_ends}, **backend)
    assert not result.failed, result.report()
    ended = [e for e in result.trace if e.task == "main/Process-1"]
    assert ended[-1].name == "(terminated: daemon of main)"
    (warning,) = [w for w in result.warnings if "main/Process-1" in w]
    assert "daemon of main" in warning and "races.point(\"daemon_second\")" in warning
    assert "(terminated: daemon of main)" in result.report()


def daemon_that_starts_a_child():
    p = multiprocessing.Process(target=nothing)
    p.start()


def starts_daemon_and_joins(state):
    p = multiprocessing.Process(target=daemon_that_starts_a_child, daemon=True)
    p.start()
    p.join()


def test_daemon_cannot_have_children(backend):
    result = races.run(nothing, {"main": starts_daemon_and_joins}, **backend)
    assert result.failure.kind == "exception"
    assert result.failure.task == "main/Process-1"
    assert "AssertionError: daemonic processes are not allowed to have children" in result.failure.message


def non_daemon_body():
    races.point("late")


def starts_and_leaves(state):
    multiprocessing.Process(target=non_daemon_body).start()


def test_non_daemon_children_are_waited_for(backend):
    result = races.run(nothing, {"main": starts_and_leaves}, **backend)
    assert not result.failed, result.report()
    assert ("main/Process-1", "late") in result.steps()
    assert result.trace[-1].task == "main/Process-1" and result.trace[-1].kind == "end"


def thread_body():
    races.point("tick")
    races.point("tock")


def starts_daemon_thread(state):
    threading.Thread(target=thread_body, daemon=True).start()


def test_daemon_thread_dies_at_exit():
    result = races.run(nothing, {"main": starts_daemon_thread})
    assert not result.failed, result.report()
    assert result.task_names == ["main", "main/Thread-1 (thread_body)"]
    assert "(terminated: daemon thread at exit)" in [e.name for e in result.trace]


# -- join, terminate, timeouts ------------------------------------------------------------


def hold_then_join(state):
    lock = multiprocessing.Lock()
    lock.acquire()
    p = multiprocessing.Process(target=take_lock, args=(lock,))
    p.start()
    p.join()


def take_lock(lock):
    lock.acquire()


def test_join_on_a_child_blocked_by_the_parent_is_a_deadlock(backend):
    result = races.run(nothing, {"main": hold_then_join}, **backend)
    assert result.failure.kind == "deadlock"
    message = result.failure.message
    assert "main -> main/Process-1 -> main" in message
    assert "Process-1.join" in message


def waits_forever():
    threading_event = multiprocessing.Event()
    threading_event.wait()


def join_with_timeout(state):
    p = multiprocessing.Process(target=waits_forever, daemon=True)
    p.start()
    p.join(5)
    assert p.is_alive()
    assert p.exitcode is None
    p.terminate()
    p.join()
    assert p.exitcode == -15


def test_join_timeout_is_virtual_and_terminate_sets_the_exit_code(backend):
    result = races.run(nothing, {"main": join_with_timeout}, **backend)
    assert not result.failed, result.report()
    joins = [e for e in result.trace if e.describe() == "Process-1.join"]
    assert joins[0].note == "timed out after 5s" and joins[0].clock == 5.0
    assert any("terminated by main" in w for w in result.warnings)


def puts_one(q):
    q.put("x")


def puts_one_cancelled(q):
    q.cancel_join_thread()
    q.put("x")


def joins_before_get(state):
    q = multiprocessing.Queue()
    p = multiprocessing.Process(target=puts_one, args=(q,))
    p.start()
    p.join()
    q.get()


def joins_cancelled(state):
    q = multiprocessing.Queue()
    p = multiprocessing.Process(target=puts_one_cancelled, args=(q,))
    p.start()
    p.join()
    assert q.get() == "x"


def gets_then_joins(state):
    q = multiprocessing.Queue()
    p = multiprocessing.Process(target=puts_one, args=(q,))
    p.start()
    assert q.get() == "x"
    p.join()


def test_join_before_the_queue_is_drained_is_blocked(backend):
    result = races.run(nothing, {"main": joins_before_get}, **backend)
    assert result.failure.kind == "blocked"
    message = result.failure.message
    assert "the child main/Process-1 put 1 item on queue Queue1 that nobody has taken" in message
    assert "get before join, or cancel_join_thread()" in message


def test_cancel_join_thread_or_get_first_lets_join_finish(backend):
    for program in (joins_cancelled, gets_then_joins):
        result = races.run(nothing, {"main": program}, **backend)
        assert not result.failed, result.report()


def worker_thread(box):
    box.append(threading.current_thread() is not None)
    races.point("in_thread")


def thread_children(state):
    box = []
    threads = [threading.Thread(target=worker_thread, args=(box,)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
        assert not t.is_alive()
    assert len(box) == 3


def test_thread_children_in_the_thread_backend():
    result = races.run(nothing, {"main": thread_children})
    assert not result.failed, result.report()
    assert result.task_names[1:] == [f"main/Thread-{i} (worker_thread)" for i in (1, 2, 3)]


def explicit_handles(state):
    p = RacesProcess(target=races.point, args=("explicit",))
    p.start()
    p.join()
    assert p.exitcode == 0


def test_races_process_handle_without_patch_mode(backend):
    result = races.run(nothing, {"main": explicit_handles}, patch=False, **backend)
    assert not result.failed, result.report()
    assert ("main/Process-1", "explicit") in result.steps()


def daemon_after_start(state):
    p = multiprocessing.Process(target=nothing)
    p.start()
    try:
        p.daemon = True
    except AssertionError as exc:
        assert str(exc) == "process has already started"
    else:
        raise AssertionError("setting daemon after start() was allowed")
    t = threading.Thread(target=nothing)
    t.start()
    try:
        t.daemon = True
    except RuntimeError as exc:
        assert "cannot set daemon status of active thread" in str(exc)
    else:
        raise AssertionError("setting daemon on a started thread was allowed")
    p.join()
    t.join()


def test_daemon_cannot_be_set_after_start():
    result = races.run(nothing, {"main": daemon_after_start})
    assert not result.failed, result.report()


def leaves_an_item(state):
    q = multiprocessing.Queue()
    multiprocessing.Process(target=puts_one, args=(q,)).start()


def test_a_child_that_leaves_queue_items_is_warned_about(backend):
    result = races.run(nothing, {"main": leaves_an_item}, **backend)
    assert not result.failed, result.report()
    assert any(
        w.startswith("main/Process-1 ended with 1 item on queue Queue1 that nobody has taken") for w in result.warnings
    ), result.warnings


class Worker(multiprocessing.Process):
    def __init__(self, q):
        super().__init__()
        self.q = q

    def run(self):
        self.q.put(self.name)


def runs_a_subclass(state):
    q = multiprocessing.Queue()
    w = Worker(q)
    w.start()
    assert q.get() == "Process-1"
    w.join()
    assert w.exitcode == 0


def test_a_process_subclass_runs_its_run_method(backend):
    result = races.run(nothing, {"main": runs_a_subclass}, **backend)
    assert not result.failed, result.report()
    assert "main/Process-1" in result.task_names
