"""Early read (时间过长): the parent sleeps instead of joining, and reads half-done results.

The pattern.  The notes' shared-memory example ends with ``time.sleep(2)``
and ``print(data)``: the main program starts ten processes that decrement
``data['num']`` under a lock, and then, instead of waiting for them, it
sleeps for what it hopes is long enough.  Here the Manager outlives the
main program (a warm server from ``setup()``), so nobody dies: the question
is only what the main program sees.

What goes wrong.  Sleeping is a guess, not a wait.  Each child holds the
lock for 0.3 seconds, so ten of them need three seconds, and after two the
main program reads ``num`` with some decrements still to come; how many
depends on the machine (how fast ten processes start, the load), so the
number printed flickers from run to run.  Here time is virtual: the
schedule ``["main:sleep"]`` stands the main program at its sleep after
starting the children, and its two virtual seconds pass before any child
gets going (the loaded machine, where starting processes alone takes
seconds): it reads ``num == 10`` instead of 0, an ``invariant`` failure,
every time.  The main program reads under the children's lock, so the
race detector is silent: the read is properly synchronised, only too early.
A lock orders accesses; it cannot say the work is finished.

The fix.  Wait for the thing itself, not for a time (``join``): ``p.join()``
for every child, then read.  The main program never sleeps, so under the
forcing schedule the interleaving is impossible (``schedule``), and the
natural run reads 0.
"""
# ruff: noqa: E741  (``l`` is the notes' own name for the lock)
from __future__ import annotations

import time
from multiprocessing import Lock, Process
from types import SimpleNamespace

import races
from races.scenario import Scenario

TASKS = 10


def setup(children=TASKS):
    data = races.manager().dict({"num": children})  # outlives the main program
    return SimpleNamespace(data=data, seen=races.manager().dict(), children=children)


def task(data, l):
    with l:
        num = data["num"]
        time.sleep(0.3)  # ten of these take three seconds
        data["num"] = num - 1


def start_all(state, l):
    ps = [Process(target=task, args=(state.data, l)) for _ in range(state.children)]
    for p in ps:
        p.start()
    return ps


def main(state):
    l = Lock()
    start_all(state, l)
    time.sleep(2)  # the bug: a guess at how long the children take
    with l:  # no data race, and still too early
        state.seen["num"] = state.data["num"]  # print(data)


def main_joins(state):
    l = Lock()
    for p in start_all(state, l):
        p.join()  # the fix: wait for the children themselves
    with l:
        state.seen["num"] = state.data["num"]


def main_saw_every_decrement(state):
    seen = dict(state.seen)
    assert seen == {"num": 0}, f"the main program read {seen} while children were still working"


SCENARIO = Scenario(
    proof={"setup_args": (2,)},  # proved exhaustively within this (Scenario.prove)
    name="early_read",
    setup=setup,
    buggy={"main": main},
    fixes={"join": {"main": main_joins}},
    schedule=["main:sleep"],
    expect="invariant",
    invariant=main_saw_every_decrement,
    options={"stress": {"why_not": (
        "each real run takes the children's 3 s, and the main program's locked "
        "read usually queues behind them at the lock, so real runs rarely read "
        "early"
    )}},
)
