"""Queue full (阻塞): a ``Queue(3)`` gets a fourth ``put`` and nobody ever takes one.

The pattern.  The notes' queue demo: ``q = Queue(3)`` holds at most three
items, and 如果容量已经满了,在调用put时将进入阻塞状态 直到有人从队列中拿走数据有空位置
才会继续执行 — when the queue is full, ``put`` blocks (阻塞) until someone
takes an item out.  Here a cook (the notes' ``make_rose``) puts four dishes
(青椒炒鸡蛋) into a ``Queue(3)``, and no one eats.

What goes wrong.  The first three ``put`` calls fill the queue; the fourth
waits for a free slot that only a consumer could make, and there is none.
Uncontrolled, the program hangs silently at the fourth ``put``.  Here no
task can run and none will be woken: the controller reports ``blocked``,
naming the cook, the queue and the line of the fourth ``put``, every time.
No interleaving is needed; the schedule ``["cook:put"]`` just starts the
story at the first ``put``.

The fix.  Three ways, each the notes' own.  ``consumer``: an eater that
takes the dishes out, so a slot frees up (the producer/consumer model).
``timeout``: ``put(rose, timeout=2)`` gives up after two (virtual) seconds
with ``queue.Full``, which the cook handles by setting the dish aside.
``nowait``: ``put_nowait`` raises ``queue.Full`` at once.  The invariant
asks that every dish is accounted for: eaten, still queued, or set aside.
"""
from __future__ import annotations

import queue
from types import SimpleNamespace

import races
from races.scenario import Scenario

ROSES = [f"{i}个青椒炒鸡蛋" for i in range(4)]


def setup():
    return SimpleNamespace(q=races.Queue(3, "q"), eaten=races.manager().list(), aside=races.manager().list())


def make_rose(state):
    for rose in ROSES:
        state.q.put(rose)  # the bug: the fourth put waits for a free slot forever


def make_rose_timeout(state):
    for rose in ROSES:
        try:
            state.q.put(rose, timeout=2)  # the fix: give up after two seconds
        except queue.Full:
            state.aside.append(rose)


def make_rose_nowait(state):
    for rose in ROSES:
        try:
            state.q.put_nowait(rose)  # the fix: raise queue.Full at once
        except queue.Full:
            state.aside.append(rose)


def eat(state):
    for _ in ROSES:
        state.eaten.append(state.q.get())


def every_dish_accounted_for(state):
    eaten, aside, queued = list(state.eaten), list(state.aside), state.q.qsize()
    assert len(eaten) + len(aside) + queued == len(ROSES), f"eaten {eaten}, aside {aside}, {queued} queued"


SCENARIO = Scenario(
    name="queue_full",
    setup=setup,
    buggy={"cook": make_rose},
    fixes={
        "consumer": {"cook": make_rose, "eater": eat},
        "timeout": {"cook": make_rose_timeout},
        "nowait": {"cook": make_rose_nowait},
    },
    schedule=["cook:put"],
    expect="blocked",
    invariant=every_dish_accounted_for,
    options={"stress": {"hangs": "its fourth put"}},
)
