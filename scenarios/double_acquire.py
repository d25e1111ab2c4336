"""Double acquire (锁死): one task acquires the same Lock twice and waits for itself.

The pattern.  The notes' 注意1 ("note 1"): 不要对同一把锁执行多次 acquire,
会锁死导致程序无法执行; 一次 acquire 必须对应一次 release — do not acquire
the same lock twice, it locks up (锁死) and the program cannot go on; every
acquire must be matched by one release.  Their example grabs the lock
(抢到了, "got it") and then grabs it again (接着抢, "grab again").

What goes wrong.  ``multiprocessing.Lock`` and ``races.Lock`` are not
reentrant: they do not remember who holds them.  The second ``acquire`` of
the holder waits for the lock to be released, which only the holder itself
could do, so it waits forever; every other task that wants the lock waits
behind it.  Uncontrolled, the program simply hangs, and a test of it hangs
until some timeout kills it, saying nothing about why.  Here the controller
sees that no task can run and that ``p0`` waits for itself: a ``deadlock``
naming both acquisition lines.  The bug needs no particular interleaving;
the schedule ``["p0:acquire", "p0", "p0:acquire"]`` just makes the story
explicit: ``p0`` takes the lock, then stands at its second acquire.

The fix.  Release before acquiring again, as the notes' example does
(``l.release()`` between 抢到了 and 接着抢): one release per acquire.  Under
the same schedule the fixed task passes its second acquire and the run
passes.  The other fix, when a function that holds the lock must call one
that takes it too, is a reentrant lock (``RLock``), which counts its
holder's acquisitions and is free again after as many releases: the
``rlock`` fix.  Either way another task may take the lock between one
task's two grabs, so the invariant only asks that every task got both.
"""
from __future__ import annotations

from types import SimpleNamespace

import races
from races.scenario import Scenario

TASKS = 2


def setup():
    said = races.manager().list()  # a fresh list on a warm Manager server
    return SimpleNamespace(said=said, lock=races.Lock("l"), rlock=races.RLock("r"))


def grab_twice(state):
    state.lock.acquire()
    state.said.append("抢到了")  # got it
    state.lock.acquire()  # the bug: still held by this very task
    state.said.append("接着抢")  # grab again
    state.lock.release()


def grab_release_grab(state):
    state.lock.acquire()
    state.said.append("抢到了")
    state.lock.release()  # the fix: one release per acquire
    state.lock.acquire()
    state.said.append("接着抢")
    state.lock.release()


def grab_twice_reentrant(state):
    state.rlock.acquire()
    state.said.append("抢到了")
    state.rlock.acquire()  # an RLock counts its holder's acquisitions
    state.said.append("接着抢")
    state.rlock.release()
    state.rlock.release()  # one release per acquire


def everyone_grabbed_twice(state):
    said = list(state.said)
    assert said.count("抢到了") == said.count("接着抢") == TASKS, f"the tasks said {said}"


SCENARIO = Scenario(
    name="double_acquire",
    setup=setup,
    buggy={f"p{i}": grab_twice for i in range(TASKS)},
    fixes={
        "release_first": {f"p{i}": grab_release_grab for i in range(TASKS)},
        "rlock": {f"p{i}": grab_twice_reentrant for i in range(TASKS)},
    },
    schedule=["p0:acquire", "p0", "p0:acquire"],
    expect="deadlock",
    invariant=everyone_grabbed_twice,
    options={"stress": {"hangs": "its self-deadlock"}},
)
