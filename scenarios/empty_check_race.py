"""Empty check race (结果不可靠): ``if not q.empty(): q.get()`` with two consumers and one item.

The pattern.  The notes list ``q.empty()`` among the queue's methods and
warn that 该结果不可靠 — the result is unreliable: by the time the caller
acts on it, another process may have changed the queue.  The tempting use is
a check-then-act: ``if not q.empty(): item = q.get()``, "take an item if
there is one, without blocking".  Here two eaters (the notes' ``eat``) share
a queue that holds one dish.

What goes wrong.  Both eaters ask ``empty()`` before either takes: both see
one dish and both go on to ``get()``.  The first takes the dish; the second
waits for a dish that never comes.  Uncontrolled, both checks must fall in
the gap of a few microseconds before the first ``get``, so the program
hangs only now and then.  The schedule ``["eater1:get", "eater2:get"]`` runs
each eater up to its ``get``, past its check: the second eater is then
``blocked`` in ``get``, every time.  For real (``races.stress``, process
tasks) both eaters line up at ``races.point("checked")``, past the check,
and the loser's ``get`` hangs until stress's timeout.  (Exploration meets a second way too:
both eaters ask while the dish is still in the feeder thread's buffer, both
hear "empty", and nobody eats.)

The fix.  Make the check and the take one operation: ``q.get(timeout=1)``
takes the dish if one comes within a second and raises ``queue.Empty`` if
not, which the eater catches and goes home hungry (``get_timeout``).  Under
the same schedule both eaters stand at their ``get``; one gets the dish, the
other waits a (virtual) second, gets ``queue.Empty``, and the run passes.
The invariant asks that the one dish was eaten exactly once.
``q.get_nowait()`` looks like the same fix but is not: a
``multiprocessing.Queue`` hands a put item to a feeder thread that writes it
to the pipe later, and ``get_nowait()`` may look before it has, so both
eaters can go home hungry with the dish still in flight.  Exploration tries
that stale answer (``races explore empty_check_race``), and stressing such a
fix on real processes shows it.
"""
from __future__ import annotations

import queue
from types import SimpleNamespace

import races
from races.scenario import Scenario


def setup():
    q = races.Queue(name="q")
    q.put("0个青椒炒鸡蛋")  # one dish, two eaters
    return SimpleNamespace(q=q, eaten=races.manager().list())


def eat_if_not_empty(state):
    if not state.q.empty():  # the bug: the answer may be stale by the next line
        races.point("checked")
        state.eaten.append(state.q.get())


def eat_or_go_home(state):
    try:
        state.eaten.append(state.q.get(timeout=1))  # the fix: check and take in one step
    except queue.Empty:
        pass


def dish_eaten_once(state):
    eaten = list(state.eaten)
    assert eaten == ["0个青椒炒鸡蛋"], f"the eaters ate {eaten}"


SCENARIO = Scenario(
    name="empty_check_race",
    setup=setup,
    buggy={"eater1": eat_if_not_empty, "eater2": eat_if_not_empty},
    fixes={"get_timeout": {"eater1": eat_or_go_home, "eater2": eat_or_go_home}},
    schedule=["eater1:get", "eater2:get"],
    expect="blocked",
    invariant=dish_eaten_once,
    options={"stress": {"hangs": "its losing eater's get", "align": "checked", "delays": {"checked": 0.01}}},
)
