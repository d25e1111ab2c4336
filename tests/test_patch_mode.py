"""Patch mode (``races.run(..., patch=True)``, the default): inside tasks and
setup the standard factories make controlled objects; outside nothing changes."""
from __future__ import annotations

import _thread
import multiprocessing
import multiprocessing.connection
import multiprocessing.queues
import multiprocessing.synchronize
import queue
import threading
from multiprocessing import Lock as bound_at_import  # a bound method of the default context
from multiprocessing.process import BaseProcess

import pytest

import races
from races.primitives.pipe import Connection
from races.primitives.value import Value
from tests.leaks import task_processes, task_threads

REAL_THREADING_LOCK = threading.Lock
PROCESS_METHOD = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


@pytest.fixture(autouse=True)
def no_leaks():
    yield
    assert task_threads() == []
    assert task_processes() == []


def kinds(made):
    return {name: f"{type(obj).__module__}.{type(obj).__qualname__}" for name, obj in made.items()}


def make_everything():
    ctx = multiprocessing.get_context(PROCESS_METHOD)
    return {
        "threading.Lock": threading.Lock(),
        "threading.RLock": threading.RLock(),
        "threading.Semaphore": threading.Semaphore(2),
        "threading.BoundedSemaphore": threading.BoundedSemaphore(2),
        "threading.Event": threading.Event(),
        "threading.Condition": threading.Condition(),
        "threading.Barrier": threading.Barrier(2),
        "queue.Queue": queue.Queue(3),
        "queue.SimpleQueue": queue.SimpleQueue(),
        "mp.Lock": multiprocessing.Lock(),
        "mp.Lock bound at import": bound_at_import(),
        "mp.RLock": multiprocessing.RLock(),
        "mp.Semaphore": multiprocessing.Semaphore(2),
        "mp.Event": multiprocessing.Event(),
        "mp.Condition": multiprocessing.Condition(),
        "mp.Barrier": multiprocessing.Barrier(2),
        "mp.Queue": multiprocessing.Queue(3),
        "mp.JoinableQueue": multiprocessing.JoinableQueue(),
        "mp.SimpleQueue": multiprocessing.SimpleQueue(),
        "ctx.Lock": ctx.Lock(),
        "ctx.Queue": ctx.Queue(),
        "synchronize.Lock": multiprocessing.synchronize.Lock(ctx=ctx),
        "mp.Pipe": multiprocessing.Pipe()[0],
        "mp.Value": multiprocessing.Value("i", 0),
    }


CONTROLLED = {
    "threading.Lock": "races.primitives.lock.Lock",
    "threading.RLock": "races.primitives.rlock.RLock",
    "threading.Semaphore": "races.primitives.semaphore.Semaphore",
    "threading.BoundedSemaphore": "races.primitives.semaphore.BoundedSemaphore",
    "threading.Event": "races.primitives.event.Event",
    "threading.Condition": "races.primitives.condition.Condition",
    "threading.Barrier": "races.primitives.barrier.Barrier",
    "queue.Queue": "races.primitives.queue.Queue",
    "queue.SimpleQueue": "races.primitives.queue.SimpleQueue",
    "mp.Lock": "races.primitives.lock.Lock",
    "mp.Lock bound at import": "races.primitives.lock.Lock",
    "mp.RLock": "races.primitives.rlock.RLock",
    "mp.Semaphore": "races.primitives.semaphore.Semaphore",
    "mp.Event": "races.primitives.event.Event",
    "mp.Condition": "races.primitives.condition.Condition",
    "mp.Barrier": "races.primitives.barrier.Barrier",
    "mp.Queue": "races.primitives.queue.Queue",
    "mp.JoinableQueue": "races.primitives.queue.JoinableQueue",
    "mp.SimpleQueue": "races.primitives.queue.SimpleQueue",
    "ctx.Lock": "races.primitives.lock.Lock",
    "ctx.Queue": "races.primitives.queue.Queue",
    "synchronize.Lock": "races.primitives.lock.Lock",
    "mp.Pipe": f"{Connection.__module__}.{Connection.__qualname__}",
    "mp.Value": f"{Value.__module__}.{Value.__qualname__}",
}


class Box:
    pass


def setup_makes():
    box = Box()
    box.in_setup = kinds(make_everything())
    return box


def task_makes(box):
    box.in_task = kinds(make_everything())


def test_factories_make_controlled_objects_in_tasks_and_setup():
    box = None

    def setup():
        nonlocal box
        box = setup_makes()
        return box

    result = races.run(setup, {"main": task_makes})
    assert not result.failed, result.report()
    assert box.in_setup == CONTROLLED
    assert box.in_task == CONTROLLED


def test_nothing_is_patched_outside_a_run():
    races.run(setup_makes, {"main": task_makes})
    outside = kinds(make_everything())
    assert not any(kind.startswith("races.") for kind in outside.values()), outside
    assert threading.Lock is REAL_THREADING_LOCK
    assert isinstance(multiprocessing.synchronize.Lock, type)
    assert isinstance(multiprocessing.queues.Queue, type)
    assert queue.Queue.__module__ == "queue"
    assert BaseProcess.start.__module__ == "multiprocessing.process"
    assert threading.Thread.start.__module__ == "threading"


def test_patch_false_leaves_the_factories_alone():
    box = Box()

    def task(b):
        b.kinds = kinds({"lock": threading.Lock(), "mp": multiprocessing.Lock()})

    result = races.run(lambda: box, {"main": task}, patch=False)
    assert not result.failed, result.report()
    assert not any(kind.startswith("races.") for kind in box.kinds.values()), box.kinds


def task_looks_inside(box):
    t = threading.Thread(target=print)
    box.thread_started_event = type(t._started).__module__
    box.lifo_mutex = type(queue.LifoQueue().mutex).__module__
    done = _thread.allocate_lock()
    done.acquire()
    seen = {}

    def elsewhere():  # an uncontrolled OS thread while the run is active
        seen["lock"] = type(threading.Lock()).__module__
        seen["queue"] = type(queue.Queue()).__module__
        done.release()

    _thread.start_new_thread(elsewhere, ())
    done.acquire()
    box.elsewhere = seen


def test_library_internals_and_other_threads_get_real_objects():
    box = Box()
    result = races.run(lambda: box, {"main": task_looks_inside})
    assert not result.failed, result.report()
    assert box.thread_started_event == "threading"  # Thread.__init__'s own Event()
    assert box.lifo_mutex in ("_thread", "builtins")  # queue.py's threading.Lock()
    assert box.elsewhere == {"lock": "_thread", "queue": "queue"}


def kinds_in_process(state):
    assert type(state["lock"]).__module__ == "races.primitives.lock"  # made in setup, sent along
    made = kinds({"thread_lock": threading.Lock(), "mp_lock": multiprocessing.Lock(), "queue": queue.Queue()})
    assert made["mp_lock"] == "races.primitives.lock.Lock", made
    # threads of a task process are tasks, so its threading objects are controlled too
    assert made["thread_lock"] == "races.primitives.lock.Lock", made
    assert made["queue"] == "races.primitives.queue.Queue", made


def process_setup():
    return {"lock": multiprocessing.Lock()}


def test_process_backend_patches_multiprocessing_and_threading():
    result = races.run(
        process_setup, {"main": kinds_in_process}, backend="process", start_method=PROCESS_METHOD
    )
    assert not result.failed, result.report()


def uses_a_manager(state):
    m = multiprocessing.Manager()
    d = m.dict()
    lock = m.Lock()
    with lock:
        d["x"] = 1
    assert d["x"] == 1
    m.shutdown()


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_manager_in_a_task_is_real_and_its_proxies_are_steps(backend):
    method = PROCESS_METHOD if backend == "process" else None
    result = races.run(lambda: None, {"main": uses_a_manager}, backend=backend, start_method=method)
    assert not result.failed, result.report()
    kinds_seen = {e.kind for e in result.trace}
    assert "manager" in kinds_seen
    assert "process" not in kinds_seen  # the Manager's own server is not a task


def manager_state():
    m = races.mp_context().Manager()
    return {"m": m, "d": m.dict({"n": 0})}


def shuts_down(state):
    state["m"].shutdown()


def uses_proxy(state):
    state["d"]["n"] = 1


def test_a_proxy_used_after_its_manager_was_shut_down_is_explained():
    result = races.run(manager_state, {"p1": shuts_down, "p3": uses_proxy})
    assert result.failure.kind == "exception"
    assert result.failure.task == "p3"
    message = result.failure.message
    assert "task p3 used a Manager proxy (dict.__setitem__) after the Manager was shut down" in message
    assert "(at tests/test_patch_mode.py:" in message
    error = message.split(" raised ", 1)[1].split(":", 1)[0]
    assert error in ("ConnectionRefusedError", "FileNotFoundError", "EOFError", "BrokenPipeError",
                     "ConnectionResetError")


def timers(box):
    box.fired = []
    late = threading.Timer(30.0, box.fired.append, args=("late",))
    cancelled = threading.Timer(60.0, box.fired.append, args=("cancelled",))
    late.start()
    cancelled.start()
    cancelled.cancel()
    late.join()
    cancelled.join()


def test_a_timer_waits_on_virtual_time():
    box = Box()
    result = races.run(lambda: box, {"main": timers})
    assert not result.failed, result.report()
    assert box.fired == ["late"]
    assert result.trace[-1].clock == 30.0


def uses_a_fork_manager(state):
    # the server is forked from the task: it must not act as the task
    m = multiprocessing.get_context("fork").Manager()
    d = m.dict({"n": 1})
    d["n"] += 1
    assert d["n"] == 2
    m.shutdown()


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_a_manager_forked_from_a_task_is_not_that_task(backend):
    method = PROCESS_METHOD if backend == "process" else None
    result = races.run(lambda: None, {"main": uses_a_fork_manager}, backend=backend, start_method=method)
    assert not result.failed, result.report()
    assert [e.task for e in result.trace] == ["main"] * len(result.trace)
