"""Module-level tasks for the runtime tests (module level so every start method can pickle them)."""
from __future__ import annotations

import os
import signal
import time
from types import SimpleNamespace

import races


class Box:
    pass


def counter_setup():
    box = Box()
    box.n = 0
    box.lock = races.Lock("L")
    return box


def increment(box):
    value = box.n
    races.point("read")
    box.n = value + 1


def increment_locked(box):
    with box.lock:
        value = box.n
        races.point("read")
        box.n = value + 1


def both_counted(box):
    assert box.n == 2, f"lost update: n={box.n}"


def returns_false(box):
    return False


def invariant_raises(box):
    raise KeyError("missing")


def manager_setup():
    manager = races.mp_context().Manager()
    return SimpleNamespace(data=manager.dict({"n": 0}), lock=races.Lock("L"))


def manager_increment(state):
    value = state.data["n"]
    races.point("read")
    state.data["n"] = value + 1


def manager_both_counted(state):
    assert state.data["n"] == 2, f"lost update: n={state.data['n']}"


def none_setup():
    return None


def raises_value_error(state):
    races.point("before")
    raise ValueError("boom in task")


def exits_hard(state):
    races.point("before")
    os._exit(3)


def killed_by_sigkill(state):
    races.point("before")
    os.kill(os.getpid(), signal.SIGKILL)


def spins_forever(state):
    races.point("before")
    while True:  # uncontrolled busy loop: neither a sync point nor an end
        pass


def waits_on_raw_lock(state):
    races.point("before")
    block_in_uncontrolled_code()


def block_in_uncontrolled_code():
    """Wait forever where the harness cannot see it (a raw ``_thread`` lock:
    patch mode makes ``threading`` objects controlled in every backend)."""
    import _thread

    lock = _thread.allocate_lock()
    lock.acquire()
    lock.acquire()


def long_sleeps(state):
    time.sleep(1000)
    races.point("after_sleep")
    time.sleep(500)


def just_points(state):
    races.point("a")
    races.point("b")


def double_acquire(box):
    box.lock.acquire()
    races.point("holding")
    box.lock.acquire()


def two_locks_setup():
    return SimpleNamespace(a=races.Lock("A"), b=races.Lock("B"))


def take_a_then_b(s):
    with s.a:
        races.point("has_a")
        with s.b:
            pass


def take_b_then_a(s):
    with s.b:
        races.point("has_b")
        with s.a:
            pass


def setup_raises():
    raise OSError("no such ticket file")
