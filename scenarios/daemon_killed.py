"""Daemon killed (守护进程): a daemon child's work is cut off when the parent's code ends.

The pattern.  The notes' first example: the main program prints 长大了
("grown up"), starts ``p = Process(target=task)`` with ``p.daemon = True``,
sleeps two seconds, prints 关闭了 ("closing") and ends.  The child prints
老了 ("old now"), sleeps two seconds and prints 睡了一会 ("slept a while").
The notes' rule: 守护进程会在主进程代码执行结束后就终止 — a daemon ends as
soon as the main program's code ends.

What goes wrong.  Both sleeps are two seconds, so it is a toss-up which
ends first.  On a real machine the main program usually wakes first (the
child started a little later), prints and ends, and the daemon is killed in
its sleep: its second print never happens, and nothing says so.  The
schedule ``["main:sleep", "main/Process-1:sleep", "main"]`` is that usual
order: both stand at their sleeps, the main program wakes first and ends.
The harness terminates the daemon (a warning names the line it never
reached) and the invariant, "the child said both its lines", fails every time.

The fix.  If the child's work matters, it must not be a daemon whose parent
walks away.  ``join``: a non-daemon child that the main program joins
instead of sleeping; under the schedule the main program never sleeps, so
the interleaving is impossible (``schedule``).  ``event``: keep the daemon,
but let it say when it is done (an ``Event`` it sets after its last line)
and have the main program wait for that before it ends.
"""
from __future__ import annotations

import time
from multiprocessing import Event, Process
from types import SimpleNamespace

import races
from races.scenario import Scenario


def setup():
    return SimpleNamespace(said=races.manager().dict())


def task(said, done=None):
    said["老了。。。。"] = "child"  # print('老了。。。。')
    time.sleep(2)
    said["睡了一会。。"] = "child"  # print('睡了一会。。'): lost when the daemon is killed first
    if done is not None:
        done.set()  # the event fix: tell the parent the work is finished


def main(state):
    state.said["长大了。。。。"] = "main"
    p = Process(target=task, args=(state.said,))
    p.daemon = True  # the bug: killed as soon as main's code ends
    p.start()
    time.sleep(2)
    state.said["关闭了。。。。"] = "main"


def main_joins(state):
    state.said["长大了。。。。"] = "main"
    p = Process(target=task, args=(state.said,))  # the fix: not a daemon...
    p.start()
    p.join()  # ...and waited for
    state.said["关闭了。。。。"] = "main"


def main_waits_for_event(state):
    state.said["长大了。。。。"] = "main"
    done = Event()
    p = Process(target=task, args=(state.said, done), daemon=True)
    p.start()
    time.sleep(2)
    done.wait()  # the fix: the daemon's work is done before main ends
    state.said["关闭了。。。。"] = "main"


def child_said_both_lines(state):
    said = dict(state.said)
    assert "老了。。。。" in said and "睡了一会。。" in said, f"the child was cut off: only {list(said)} were said"


SCENARIO = Scenario(
    name="daemon_killed",
    setup=setup,
    buggy={"main": main},
    fixes={"join": {"main": main_joins}, "event": {"main": main_waits_for_event}},
    schedule=["main:sleep", "main/Process-1:sleep", "main"],
    expect="invariant",
    invariant=child_said_both_lines,
    options={"stress": {"align": None, "delays": {}, "seconds": 2.0, "why_not": {"thread": (
        "a daemon is killed when its parent process exits; a thread task's "
        "process lives on, so its daemon is never cut off for real (a process "
        "task's is: stress shows it on processes)"
    )}}},
)
