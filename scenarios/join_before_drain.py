"""Join before drain (进程队列死锁): the parent joins a child before taking what the child put.

The pattern.  The notes' ``Queue`` passes data between processes, and the
main program waits for its children with ``join``.  Put together in the
natural order, "wait for the worker, then read its answer": a child
computes a large result and ``q.put``\\ s it, and the parent does
``p.join()`` and then ``q.get()``.

What goes wrong.  A ``multiprocessing.Queue`` is a pipe with a feeder
thread.  A child that put items does not exit until the feeder has flushed
them into the pipe (the notes' ``join_thread``: 默认情况下,此方法由不是q的原始
创建者的所有进程调用), and a large object does not fit in the pipe's buffer
until someone reads.  The parent reads only after the child has exited; the
child exits only after the parent has read: a deadlock that hangs forever
while small objects work fine.  The harness models the feeder without
measuring the pipe: a child cannot end while an item it put is untaken
(whatever its size), so the parent's ``join`` waits for good: ``blocked``,
with the hint "get before join".  The schedule
``["main:join"]`` stands the parent at its ``join``.

The fix.  Get before join (``get_first``): the parent takes the result, and
then joins a child that can now exit.  Under the schedule the parent never
stands at ``join`` before its ``get``, so the interleaving is impossible
(``schedule``) and the natural run passes.
"""
from __future__ import annotations

from multiprocessing import Process, Queue
from types import SimpleNamespace

import races
from races.scenario import Scenario

SIZE = 1_000_000  # well over a pipe's buffer


def setup():
    return SimpleNamespace(got=races.manager().dict())


def worker(q):
    q.put("x" * SIZE)  # a large result


def main(state):
    q = Queue()
    p = Process(target=worker, args=(q,))
    p.start()
    p.join()  # the bug: the child cannot exit before its result is taken
    state.got["size"] = len(q.get())


def main_gets_first(state):
    q = Queue()
    p = Process(target=worker, args=(q,))
    p.start()
    state.got["size"] = len(q.get())  # the fix: take the result...
    p.join()  # ...then wait for the child


def parent_got_the_result(state):
    got = dict(state.got)
    assert got == {"size": SIZE}, f"the parent got {got}"


SCENARIO = Scenario(
    name="join_before_drain",
    setup=setup,
    buggy={"main": main},
    fixes={"get_first": {"main": main_gets_first}},
    schedule=["main:join"],
    expect="blocked",
    invariant=parent_got_the_result,
    options={"stress": {"hangs": "its join"}},
)
