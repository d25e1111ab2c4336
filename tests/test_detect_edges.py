"""The race detector's happens-before edges: for each primitive a writer and a
reader that race without the edge and do not with it (serial schedule)."""
from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

import races


def setup():
    return SimpleNamespace(
        x=races.shared(SimpleNamespace(v=0), "x"),
        lock=races.Lock("L"),
        rlock=races.RLock("R"),
        sem=races.Semaphore(0),
        event=races.Event(),
        cond=races.Condition(races.Lock("C")),
        barrier=races.Barrier(2),
        queue=races.Queue(),
        jqueue=races.JoinableQueue(),
        pipe=races.Pipe(),
        flag=races.shared(SimpleNamespace(ready=False), "flag"),
    )


def write(state):
    state.x.v = 1


def read(state):
    return state.x.v


def run(writer, reader, **options):
    return races.run(setup, {"w": writer, "r": reader}, schedule=[], detect_races=True, **options)


def assert_race(result, where="x.v"):
    assert result.failure is not None and result.failure.kind == "race", result.report()
    assert result.races and result.races[0].location == where
    assert "no happens-before" in result.races[0].why


def assert_silent(result):
    assert result.failure is None, result.report()
    assert result.races == []


# -- one (writer, reader) pair per edge ------------------------------------------


def w_lock(s):
    with s.lock:
        write(s)


def r_lock(s):
    with s.lock:
        read(s)


def w_rlock(s):
    with s.rlock:
        with s.rlock:
            write(s)


def r_rlock(s):
    with s.rlock:
        read(s)


def w_sem(s):
    write(s)
    s.sem.release()


def r_sem(s):
    s.sem.acquire()
    read(s)


def w_event(s):
    write(s)
    s.event.set()


def r_event(s):
    assert s.event.wait()
    read(s)


def w_cond(s):
    with s.cond:
        while not s.flag.ready:
            s.cond.wait()
    read(s)


def r_cond(s):
    write(s)
    with s.cond:
        s.flag.ready = True
        s.cond.notify()


def w_barrier(s):
    write(s)
    s.barrier.wait()


def r_barrier(s):
    s.barrier.wait()
    read(s)


def w_queue(s):
    write(s)
    s.queue.put(1)


def r_queue(s):
    s.queue.get()
    read(s)


def w_jqueue(s):
    s.jqueue.put(1)
    s.jqueue.join()
    read(s)


def r_jqueue(s):
    s.jqueue.get()
    write(s)
    s.jqueue.task_done()


def w_pipe(s):
    write(s)
    s.pipe[0].send("hi")


def r_pipe(s):
    s.pipe[1].recv()
    read(s)


def w_start(s):
    write(s)
    t = threading.Thread(target=read, args=(s,))
    t.start()
    t.join()


def w_join(s):
    t = threading.Thread(target=write, args=(s,))
    t.start()
    t.join()
    read(s)


def w_join_missing(s):
    t = threading.Thread(target=write, args=(s,))
    t.start()
    races.point("before-join")
    read(s)
    t.join()


def w_start_late(s):
    t = threading.Thread(target=read, args=(s,))
    t.start()
    write(s)
    t.join()


def nothing(s):
    return None


EDGES = {
    # name: (writer, reader with the edge, reader without it)
    "lock": (w_lock, r_lock, read),
    "rlock": (w_rlock, r_rlock, read),
    "semaphore": (w_sem, r_sem, read),
    "event": (w_event, r_event, read),
    "barrier": (w_barrier, r_barrier, read),
    "queue": (w_queue, r_queue, read),
    "pipe": (w_pipe, r_pipe, read),
}


@pytest.mark.parametrize("edge", list(EDGES))
def test_edge_orders_the_accesses(edge):
    writer, reader, _ = EDGES[edge]
    assert_silent(run(writer, reader))


@pytest.mark.parametrize("edge", list(EDGES))
def test_without_the_edge_the_accesses_race(edge):
    writer, _, unordered = EDGES[edge]
    if edge == "barrier":
        writer = write
    assert_race(run(writer, unordered))


def test_condition_notify_orders_the_wakeup():
    # the waiter runs first and waits; the notifier writes before it notifies
    result = races.run(setup, {"waiter": w_cond, "notifier": r_cond}, schedule=[], detect_races=True)
    assert_silent(result)


def test_condition_without_wait_races():
    def peek(s):
        read(s)

    result = races.run(setup, {"waiter": peek, "notifier": r_cond}, schedule=["notifier"], detect_races=True)
    assert_race(result)


def test_joinable_queue_task_done_orders_join():
    assert_silent(run(w_jqueue, r_jqueue))


def test_joinable_queue_without_join_races():
    def w(s):
        s.jqueue.put(1)
        races.point("put")
        read(s)

    result = races.run(setup, {"w": w, "r": r_jqueue}, schedule=["w:put", "r", "w"], detect_races=True)
    assert_race(result)


def test_queue_edge_is_per_item():
    def w(s):
        s.queue.put(1)
        write(s)  # after the first item: the first get is not ordered after it
        s.queue.put(2)

    def r_first(s):
        s.queue.get()
        read(s)

    def r_second(s):
        s.queue.get()
        s.queue.get()
        read(s)

    assert_race(run(w, r_first))
    assert_silent(run(w, r_second))


def test_task_start_orders_parent_before_child():
    assert_silent(run(w_start, nothing))
    assert_race(run(w_start_late, nothing))


def test_join_orders_child_before_parent():
    assert_silent(run(w_join, nothing))
    assert_race(run(w_join_missing, nothing))


def test_initial_tasks_are_ordered_after_setup():
    # setup's own writes are not accesses; a single task never races with itself
    assert_silent(races.run(setup, {"w": write}, schedule=[], detect_races=True))


def test_report_mode_collects_without_failing():
    result = races.run(setup, {"w": write, "r": read}, schedule=[], detect_races="report")
    assert result.failure is None
    assert len(result.races) == 1
    assert any("data race on x.v" in w for w in result.warnings)


def test_default_collects_nothing():
    result = races.run(setup, {"w": write, "r": read}, schedule=[])
    assert result.failure is None and result.races == []


def test_same_pair_reported_once():
    result = races.run(setup, {f"t{i}": write for i in range(4)}, schedule=[], detect_races=True)
    assert len(result.races) == 1
    race = result.races[0]
    assert race.kinds == ("write", "write")
    text = race.describe()
    assert text.startswith("WARNING: DATA RACE on x.v")
    assert "Write by task t1" in text and "Previous write by task t0" in text
    assert "test_detect_edges.py" in text
    assert "no lock held in common" in race.why
    assert "data race" in result.report()


def test_bad_mode_is_refused():
    with pytest.raises(ValueError):
        races.run(setup, {"w": write}, detect_races="yes")


# -- the process backend (forkserver) ------------------------------------------------


def psetup():
    return SimpleNamespace(
        v=races.Value("i", 0, lock=False, name="v"),
        lock=races.Lock("L"),
        queue=races.Queue(),
    )


def p_write(s):
    s.v.value = 1


def p_read(s):
    return s.v.value


def p_w_lock(s):
    with s.lock:
        p_write(s)


def p_r_lock(s):
    with s.lock:
        p_read(s)


def p_w_queue(s):
    p_write(s)
    s.queue.put(1)


def p_r_queue(s):
    s.queue.get()
    p_read(s)


PROCESS = {"backend": "process", "start_method": "forkserver"}


@pytest.mark.parametrize("pair", [(p_w_lock, p_r_lock), (p_w_queue, p_r_queue)], ids=["lock", "queue"])
def test_process_backend_edges(pair):
    writer, reader = pair
    result = races.run(psetup, {"w": writer, "r": reader}, schedule=[], detect_races=True, **PROCESS)
    assert_silent(result)
    result = races.run(psetup, {"w": writer, "r": p_read}, schedule=[], detect_races=True, **PROCESS)
    assert_race(result, "v.value")
