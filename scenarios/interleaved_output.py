"""Interleaved output (数据错乱): three tasks print three-line greetings, and the lines mix.

The pattern.  The notes open their section on the mutex (互斥锁) with three
processes that each print a greeting of three lines with a
``time.sleep(3)`` between them: ``task1`` says 你好,阿森。。。 / 吃饭 / 下雨,
``task2`` 你好,阿三。。。 / 吃面 / 下雪, ``task3`` 你好,阿四。。。 / 吃米 /
下冰雹.  The screen is the shared resource; the notes call the result data
confusion (数据错乱): 当多个进程同时要操作同一个资源时,将会导致数据错乱的问题.

What goes wrong.  Nothing orders the tasks: while ``task1`` sleeps after its
first line, ``task2`` prints its own first line, and the greetings come out
shuffled.  Here the lines go to a Manager list instead of stdout (so the
harness can read them from threads and processes alike), the notes'
``time.sleep(3)`` is a sync point on virtual time, and the schedule
``["task1:sleep", "task2:sleep"]`` lets ``task2`` speak while ``task1``
sleeps between its lines: an ``invariant`` failure (a greeting is not
contiguous), every time.

The fix.  The notes' 解决方案2 (solution 2): one mutex, shared by all three,
held around the whole greeting (``lock.acquire()`` ... ``lock.release()``).
Under the same schedule ``task2`` is blocked at the lock while ``task1``
sleeps inside it, so the interleaving is reported impossible
(``schedule``).  The notes' 解决方案1 (solution 1), ``p.start(); p.join()``
for each process in turn, also works but serialises everything and fixes
the order; it needs a controlled ``Process.join``, which the harness does not
have yet, so it is not one of the fixes here.
"""
from __future__ import annotations

import functools
import time
from types import SimpleNamespace

import races
from races.scenario import Scenario

GREETINGS = {
    "task1": ["你好,阿森。。。", "吃饭", "下雨"],
    "task2": ["你好,阿三。。。", "吃面", "下雪"],
    "task3": ["你好,阿四。。。", "吃米", "下冰雹"],
}


def setup():
    manager = races.mp_context().Manager()  # stopped by the harness after the run
    return SimpleNamespace(screen=manager.list(), lock=races.Lock("lock"))


def greet(name, state):
    lines = GREETINGS[name]
    for line in lines[:-1]:
        state.screen.append((name, line))  # print(line)
        time.sleep(3)
    state.screen.append((name, lines[-1]))


def greet_with_lock(name, state):
    with state.lock:
        greet(name, state)


def greetings_are_whole(state):
    screen = [tuple(entry) for entry in state.screen]
    speakers = [name for name, _ in screen]
    runs = [name for i, name in enumerate(speakers) if i == 0 or speakers[i - 1] != name]
    shown = " / ".join(line for _, line in screen)
    assert len(runs) == len(GREETINGS), f"the greetings are mixed up: {shown}"


def tasks(task):
    return {name: functools.partial(task, name) for name in GREETINGS}


SCENARIO = Scenario(
    proof={"preemption_bound": 1},  # proved exhaustively within this (Scenario.prove)
    name="interleaved_output",
    setup=setup,
    buggy=tasks(greet),
    fixes={"lock": tasks(greet_with_lock)},
    schedule=["task1:sleep", "task2:sleep"],
    expect="invariant",
    invariant=greetings_are_whole,
    options={"stress": {"align": None, "delays": {}, "seconds": 6.0}},  # a real run sleeps 2 x 3 s
)
