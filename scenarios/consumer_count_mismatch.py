"""Consumer count mismatch (阻塞): the cook and the eaters count the dishes separately, and disagree.

The pattern.  The notes' producer/consumer model (生产者消费者模型):
``make_rose`` puts ``for i in range(6)`` dishes (青椒炒鸡蛋) on a ``Queue`` and
``eat`` takes ``for i in range(6)`` of them, each in its own ``Process``.  The
two loops agree only because both say 6.  Here the main program starts one
cook and two eaters; the cook was changed to make 5 dishes, and each eater
still takes its hard-coded share of 3.

What goes wrong.  The eaters want 6 dishes and the cook makes 5: whichever
eater asks last waits in ``q.get()`` for a sixth dish that never comes, and
the main program, waiting for its non-daemon children, never ends.
Uncontrolled it just hangs.  Here no task can run and none will be woken: a
``blocked`` report naming the eater and the line of its ``get``, under any
order (the schedule ``["main"]`` just starts the run).

The fix.  Let the cook tell the eaters when it is done, instead of both
sides counting.  ``sentinel``: after its dishes the cook puts one ``None``
per eater, and an eater stops at the ``None`` it takes.  ``joinable``: the
notes' later form with ``JoinableQueue``: each eater calls ``task_done()``
after a dish and loops forever as a daemon, the cook ``join()``\\ s the queue
(it returns once every dish is done), the main program joins the cook and
ends, and the daemons end with it.  Either way every dish is eaten.
"""
from __future__ import annotations

from multiprocessing import Process
from types import SimpleNamespace

import races
from races.scenario import Scenario

EATERS = 2


def setup():
    return SimpleNamespace(q=races.JoinableQueue(name="q"), eaten=races.manager().dict())


def make_rose(q, sentinels=0):
    for i in range(5):  # the cook makes 5 now...
        q.put(f"{i}个青椒炒鸡蛋")
    for _ in range(sentinels):
        q.put(None)  # the sentinel fix: one "no more dishes" per eater


def eat(q, eaten):
    for _ in range(3):  # ...and each of the 2 eaters still takes 3: the bug
        eaten[q.get()] = "吃完了"  # eaten up


def eat_until_none(q, eaten):
    while (rose := q.get()) is not None:
        eaten[rose] = "吃完了"


def make_rose_and_join(q):
    make_rose(q)
    q.join()  # returns once every dish is task_done()


def eat_forever(q, eaten):
    while True:
        eaten[q.get()] = "吃完了"
        q.task_done()


def main(state, sentinels=0, eater=eat):
    Process(target=make_rose, args=(state.q, sentinels)).start()
    for _ in range(EATERS):
        Process(target=eater, args=(state.q, state.eaten)).start()


def main_sentinel(state):
    main(state, sentinels=EATERS, eater=eat_until_none)


def main_joinable(state):
    cook = Process(target=make_rose_and_join, args=(state.q,))
    cook.start()
    for _ in range(EATERS):
        Process(target=eat_forever, args=(state.q, state.eaten), daemon=True).start()
    cook.join()  # the daemon eaters end with main


def every_dish_eaten(state):
    eaten = sorted(state.eaten.keys())
    assert eaten == [f"{i}个青椒炒鸡蛋" for i in range(5)], f"the eaters ate {eaten}"


SCENARIO = Scenario(
    proof={"preemption_bound": 1},  # proved exhaustively within this (Scenario.prove)
    name="consumer_count_mismatch",
    setup=setup,
    buggy={"main": main},
    fixes={"sentinel": {"main": main_sentinel}, "joinable": {"main": main_joinable}},
    schedule=["main"],
    expect="blocked",
    invariant=every_dish_eaten,
    options={"stress": {"hangs": "its hungry eater's get", "fix_limits": dict.fromkeys(("thread", "process"), (
        "the fixes hand the races queue to processes the main task starts, and "
        "stress mode shares a races primitive only with its own task processes"
    ))}},
)
