"""Manager lost update (共享内存, Manager): ``data['num'] -= 1`` without a lock.

The pattern.  The notes' shared-memory example: ``Manager().dict({'num': 10})``
is shared by ten processes, and each one decrements ``num``:
``num = data['num']``, ``time.sleep(0.1)``, ``data['num'] = num - 1``.  A
Manager proxy makes every single call safe, so it is tempting to think the
dict is "process safe".

What goes wrong.  Each call is a separate round trip to the Manager server;
the read and the write are two calls with a gap between them.  Task ``p0``
reads 10 and sleeps; ``p1`` reads 10 too; both write 9.  One decrement is
lost, and ``num`` ends above 0.  Run uncontrolled on two cores this loses
updates in most runs but not all, so a test of it flickers.  Here the notes'
own ``time.sleep(0.1)`` is a sync point (on virtual time: it costs nothing),
and the schedule ``["p0:sleep", "p1:sleep"]`` parks both tasks there between
read and write.

``setup()`` takes a fresh dict per run from ``races.manager()``, a Manager
server kept warm between runs, so a hundred runs do not start a hundred
servers.

The fix.  The notes take ``l.acquire()`` before the read and ``l.release()``
after the write: one lock shared by all ten, held over read-modify-write.
Under the forcing schedule ``p1`` is blocked at the lock while ``p0`` sleeps
inside it, so the interleaving is reported impossible (``schedule``).
"""
from __future__ import annotations

import time
from types import SimpleNamespace

import races
from races.scenario import Scenario

TASKS = 10


def setup(tasks=TASKS):
    data = races.manager().dict({"num": tasks})  # a fresh dict on a warm Manager server
    return SimpleNamespace(data=data, lock=races.Lock("l"))


def task_without_lock(state):
    data = state.data
    num = data["num"]
    time.sleep(0.1)
    data["num"] = num - 1


def task_with_lock(state):
    state.lock.acquire()
    data = state.data
    num = data["num"]
    time.sleep(0.1)
    data["num"] = num - 1
    state.lock.release()


def every_decrement_counted(state):
    num = state.data["num"]
    assert num == 0, f"num is {num} after every task took 1 from it: {num} updates lost"


SCENARIO = Scenario(
    proof={"tasks": 3, "setup_args": (3,)},  # proved exhaustively within this (Scenario.prove)
    name="manager_lost_update",
    setup=setup,
    buggy={f"p{i}": task_without_lock for i in range(TASKS)},
    fixes={"lock": {f"p{i}": task_with_lock for i in range(TASKS)}},
    schedule=["p0:sleep", "p1:sleep"],
    expect="invariant",
    invariant=every_decrement_counted,
    options={"stress": {"align": None, "delays": {}}},
)
