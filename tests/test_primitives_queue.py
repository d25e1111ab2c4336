"""races.Queue / JoinableQueue / SimpleQueue against queue.Queue and
queue.SimpleQueue, in both backends; blocked diagnoses; virtual timeouts."""
from __future__ import annotations

import functools
import queue
import time
from types import SimpleNamespace


import races
from tests.backends import outcome


def script(q):
    out = [outcome(q.empty), outcome(q.full), outcome(q.qsize)]
    for item in ("a", {"b": [1, 2]}, 3):
        out.append(outcome(q.put, item))
    out += [
        outcome(q.put_nowait, 4),
        outcome(q.put, 5, timeout=0.01),
        outcome(q.put, 5, False),
        outcome(q.put, 5, timeout=-1),
        outcome(q.qsize), outcome(q.full), outcome(q.empty),
        outcome(q.get), outcome(q.get_nowait), outcome(q.get, timeout=0.01),
        outcome(q.get_nowait),
        outcome(q.get, timeout=0.01),
        outcome(q.get, False),
        outcome(q.get, timeout=-1),
        outcome(q.qsize), outcome(q.empty),
        outcome(q.task_done), outcome(q.task_done), outcome(q.task_done),
        outcome(q.task_done),
        outcome(q.join),
    ]
    return out


def simple_script(q):
    return [
        outcome(q.empty), outcome(q.put, 1), outcome(q.put_nowait, 2), outcome(q.put, 3, False),
        outcome(q.qsize), outcome(q.get), outcome(q.get_nowait), outcome(q.get, timeout=0.01),
        outcome(q.empty), outcome(q.get_nowait), outcome(q.get, timeout=0.01),
    ]


def unbounded_script(q):
    out = [outcome(q.put, i) for i in range(50)]
    return out + [outcome(q.full), outcome(q.qsize), outcome(q.put_nowait, 50), outcome(q.get)]


def reference():
    """CPython's outcomes, computed outside any run (setup() runs in patch mode)."""
    return (
        script(queue.Queue(3)), script(queue.Queue(3)), simple_script(queue.SimpleQueue()),
        unbounded_script(queue.Queue()),
    )


def setup(expected=(None, None, None, None)):
    return SimpleNamespace(
        q=races.Queue(3, name="q"), expected=expected[0],
        jq=races.JoinableQueue(3), jq_expected=expected[1],
        sq=races.SimpleQueue(), sq_expected=expected[2],
        uq=races.Queue(), uq_expected=expected[3],
    )


def run_scripts(s):
    assert script(s.q) == s.expected
    assert script(s.jq) == s.jq_expected
    assert simple_script(s.sq) == s.sq_expected
    assert unbounded_script(s.uq) == s.uq_expected


def test_queue_operations_match_cpython(backend):
    result = races.run(functools.partial(setup, reference()), [run_scripts], **backend)
    assert not result.failed, result.report()


def test_queues_outside_the_harness():
    assert script(races.Queue(3)) == script(queue.Queue(3))
    assert script(races.JoinableQueue(3)) == script(queue.Queue(3))
    assert simple_script(races.SimpleQueue()) == simple_script(queue.SimpleQueue())
    q = races.Queue()
    q.close()
    q.join_thread()
    q.cancel_join_thread()


def fill_four(s):
    for i in range(4):
        s.q.put(i)


def test_fourth_put_on_full_queue_is_blocked(backend):
    result = races.run(setup, {"producer": fill_four}, **backend)
    assert result.failure.kind == "blocked"
    message = result.failure.message
    assert "producer waits forever in Queue.put (q) at tests/test_primitives_queue.py:" in message
    assert "the queue is full (3/3) and no task can take from it" in message


def get_one(s):
    s.q.get()


def test_get_on_empty_queue_without_producer_is_blocked(backend):
    result = races.run(setup, {"consumer": get_one}, **backend)
    assert result.failure.kind == "blocked"
    assert "consumer waits forever in Queue.get (q)" in result.failure.message
    assert "the queue is empty" in result.failure.message


def timed_get(s):
    try:
        s.q.get(timeout=2)
    except queue.Empty:
        races.point("empty")
    else:
        raise AssertionError("get(timeout=2) returned an item")


def test_timed_get_raises_empty_on_virtual_time(backend):
    began = time.monotonic()
    result = races.run(setup, [timed_get], **backend)
    assert time.monotonic() - began < 1.9
    assert not result.failed, result.report()
    entry = next(e for e in result.trace if e.name == "get")
    assert entry.clock == 2.0 and "timed out after 2s" in entry.note
    assert next(e for e in result.trace if e.name == "empty").clock == 2.0


def pc_setup():
    return SimpleNamespace(q=races.Queue(2, name="q"), jq=races.JoinableQueue(name="jq"), out=races.Queue(name="out"))


def producer(s):
    for i in range(5):
        s.q.put({"n": i, "payload": [i] * i})
    s.q.put(None)


def consumer(s):
    seen = []
    while True:
        item = s.q.get()
        if item is None:
            break
        seen.append(item["n"])
        assert item["payload"] == [item["n"]] * item["n"]
    assert seen == [0, 1, 2, 3, 4], seen


def test_producer_consumer_with_sentinel(backend):
    for tasks in ({"p": producer, "c": consumer}, {"c": consumer, "p": producer}):
        result = races.run(pc_setup, tasks, **backend)
        assert not result.failed, result.report()
        assert [e.name for e in result.trace if e.task == "p"].count("put") == 6


def joinable_producer(s):
    for i in range(3):
        s.jq.put(i)
    s.jq.join()
    races.point("all_done")


def joinable_worker(s):
    for _ in range(3):
        s.jq.get()
        s.jq.task_done()


def test_joinable_queue_join_waits_for_task_done(backend):
    result = races.run(pc_setup, {"p": joinable_producer, "w": joinable_worker}, **backend)
    assert not result.failed, result.report()
    steps = result.steps()
    assert steps.index(("p", "all_done")) > max(i for i, s in enumerate(steps) if s == ("w", "jq.task_done"))


def joinable_forgets_task_done(s):
    s.jq.put(1)
    s.jq.get()
    s.jq.join()


def test_joinable_queue_join_without_task_done_is_blocked(backend):
    result = races.run(pc_setup, {"w": joinable_forgets_task_done}, **backend)
    assert result.failure.kind == "blocked"
    assert "JoinableQueue.join (jq)" in result.failure.message
    assert "1 item(s) were put but not marked task_done()" in result.failure.message


def prefilled_setup():
    s = pc_setup()
    s.q.put("from setup")
    s.jq.put("job")
    return s


def takes_prefilled(s):
    assert s.q.get_nowait() == "from setup"
    assert s.jq.get() == "job"
    s.jq.task_done()
    s.jq.join()
    s.q.close()
    s.q.cancel_join_thread()
    s.q.join_thread()


def test_items_put_in_setup_reach_the_tasks(backend):
    result = races.run(prefilled_setup, [takes_prefilled], **backend)
    assert not result.failed, result.report()


def leaves_two(s):
    s.out.put("x")
    s.out.put("y")
    s.out.put("z")
    s.out.get()


def test_invariant_sees_the_items_tasks_left(backend):
    def invariant(s):
        assert s.out.qsize() == 2
        assert s.out.get_nowait() == "y"

    result = races.run(pc_setup, [leaves_two], invariant, **backend)
    assert not result.failed, result.report()


def simple_setup():
    s = SimpleNamespace(sq=races.SimpleQueue(name="sq"))
    s.sq.put("seed")
    return s


def simple_takes_and_leaves(s):
    assert s.sq.get() == "seed"
    s.sq.put("left")


def test_simple_queue_seeded_in_setup_and_mirrored_back(backend):
    def invariant(s):
        assert s.sq.get_nowait() == "left" and s.sq.empty()

    result = races.run(simple_setup, [simple_takes_and_leaves], invariant, **backend)
    assert not result.failed, result.report()
