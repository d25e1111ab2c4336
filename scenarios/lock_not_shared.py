"""Lock not shared: each task makes its own Lock, so nothing is excluded.

The pattern.  The notes' 注意2 ("note 2"): 想要保住数据安全,必须保住所有进程
使用同一把锁 — to keep the data safe, every process must use the same lock.
The tempting mistake is to write the lock where it is used: each task runs
``l = Lock()``, ``l.acquire()``, then the notes' Manager decrement
(``num = data['num']``, ``time.sleep(0.1)``, ``data['num'] = num - 1``),
then ``l.release()``.  It looks exactly like the locked version.

What goes wrong.  A lock excludes only the tasks that acquire *that* lock.
Ten tasks with ten private locks each acquire their own at once and never
wait: the lock protects nothing.  ``p0`` reads 10 and sleeps inside its
lock; ``p1`` takes its own, different lock, reads 10 too; both write 9 and a
decrement is lost.  (With processes the same happens when a lock is made
in a module's global code: each spawned child imports the module and gets
its own.)  The schedule ``["p0:sleep", "p1:sleep"]`` parks both tasks at the
sleep between read and write, both inside "the" lock: ``num`` ends at 1,
an ``invariant`` failure, every time.

The fix.  Create one lock before the tasks start (the notes' ``l = Lock()``
in the main block, passed as ``args=(data, l)``); here, in ``setup``, shared
by every task.  Under the same schedule ``p1`` is blocked at the lock while
``p0`` sleeps holding it, so the run reports the interleaving impossible
(``schedule``); in any order the ten decrements all count.
"""
from __future__ import annotations

import time
from types import SimpleNamespace

import races
from races.scenario import Scenario

TASKS = 10


def setup(tasks=TASKS):
    manager = races.mp_context().Manager()  # stopped by the harness after the run
    return SimpleNamespace(data=manager.dict({"num": tasks}), lock=races.Lock("l"))


def decrement(state, lock):
    lock.acquire()
    num = state.data["num"]
    time.sleep(0.1)
    state.data["num"] = num - 1
    lock.release()


def task_with_own_lock(state):
    decrement(state, races.Lock("l"))  # the bug: a new lock in every task


def task_with_shared_lock(state):
    decrement(state, state.lock)  # the fix: the one lock made in setup


def every_decrement_counted(state):
    num = state.data["num"]
    assert num == 0, f"num is {num} after every task took 1 from it: {num} updates lost"


SCENARIO = Scenario(
    proof={"tasks": 3, "setup_args": (3,), "preemption_bound": 1},  # proved exhaustively within this (Scenario.prove)
    name="lock_not_shared",
    setup=setup,
    buggy={f"p{i}": task_with_own_lock for i in range(TASKS)},
    fixes={"shared_lock": {f"p{i}": task_with_shared_lock for i in range(TASKS)}},
    schedule=["p0:sleep", "p1:sleep"],
    expect="invariant",
    invariant=every_decrement_counted,
    options={"stress": {"align": None, "delays": {}}},
)
