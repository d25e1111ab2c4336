"""Queue empty get (阻塞): ``q.get()`` on an empty queue waits for an item that never comes.

The pattern.  The notes' queue demo puts three items into ``Queue(3)``
(``'123'``, ``'qwe'``, ``'利物浦'``), takes one, puts a fourth (``'句柄hi'``)
and takes the rest; then it calls ``get`` once more.  Of ``get`` they say:
如果blocked为True(默认值) ... 那么在等待时间内没有取到任何元素,会抛出Queue.Empty异常
— with a timeout it raises ``queue.Empty``; without one it blocks (阻塞)
until an item arrives.

What goes wrong.  After four puts and four gets the queue is empty, and the
fifth ``get()`` has no timeout.  No other task will ever put, so it waits
forever: uncontrolled, the program hangs without a word.  Here no task can
run and none will be woken, and the controller reports ``blocked``, naming
the task, the queue and the line of the fifth ``get``, every time.  No
interleaving is needed; the schedule ``["main:get"]`` starts the story at
the first ``get``.

The fix.  The notes' own last line: ``q.get(block=True, timeout=2)`` waits
two (virtual) seconds and raises ``queue.Empty``, which the task catches to
say the queue is drained (``timeout``).  The invariant asks that the four
items came out in the order they went in (先进先出, first in first out).
"""
from __future__ import annotations

import queue
from types import SimpleNamespace

import races
from races.scenario import Scenario

ITEMS = ["123", "qwe", "利物浦", "句柄hi"]


def setup():
    return SimpleNamespace(q=races.Queue(3, "q"), printed=races.manager().list())


def fill_and_take(state):
    q, printed = state.q, state.printed
    for item in ITEMS[:3]:
        q.put(item)
    printed.append(q.get())
    q.put(ITEMS[3])
    for _ in range(3):
        printed.append(q.get())


def demo(state):
    fill_and_take(state)
    state.printed.append(state.q.get())  # the bug: the queue is empty and nobody will put


def demo_with_timeout(state):
    fill_and_take(state)
    try:
        state.printed.append(state.q.get(block=True, timeout=2))  # the fix: give up after two seconds
    except queue.Empty:
        state.printed.append("queue.Empty")


def first_in_first_out(state):
    printed = list(state.printed)
    assert printed[:4] == ITEMS, f"the demo printed {printed}"


SCENARIO = Scenario(
    name="queue_empty_get",
    setup=setup,
    buggy={"main": demo},
    fixes={"timeout": {"main": demo_with_timeout}},
    schedule=["main:get"],
    expect="blocked",
    invariant=first_in_first_out,
    options={"stress": {"hangs": "its last get"}},
)
