"""Lock order inversion (锁死 with two locks): two tasks take two locks in opposite orders.

The pattern.  The notes warn that one lock acquired twice locks up (锁死,
注意1); the same happens with two locks and two tasks.  Extend the ticket
exercise (抢票) with a till: a Manager dict holds ``tickets`` and ``money``,
each guarded by its own lock.  A buyer locks the tickets, then the till,
and moves one ticket out and its price in.  A refund desk does the reverse,
and, thinking money first, locks the till, then the tickets.

What goes wrong.  The buyer holds ``ticket_lock`` and waits for
``till_lock``; the refund desk holds ``till_lock`` and waits for
``ticket_lock``.  Each waits for the other, forever.  Uncontrolled this
needs both tasks to take their first lock in the same instant, so it
hangs one run in thousands (usually in production).  The schedule
``["buyer:till_lock.acquire", "refund:ticket_lock.acquire"]`` stops the buyer
holding the first lock and lets the refund desk take its first lock: the
controller finds the wait-for cycle and reports a ``deadlock`` naming both
holders and the lines where they acquired, every time.  For real
(``races.stress``, process tasks) both desks line up at
``races.point("holding_one")``, each holding its first lock, and the run
hangs until stress's timeout dumps their stacks and kills them.

The fix.  One global lock order: every task that needs both takes
``ticket_lock`` first, then ``till_lock``.  A cycle needs someone to hold
the later lock while waiting for the earlier one, and nobody does.  Under
the same schedule the refund desk waits at ``ticket_lock`` holding nothing,
the buyer finishes, and the run passes.
"""
from __future__ import annotations

from types import SimpleNamespace

import races
from races.scenario import Scenario

PRICE = 100


def setup():
    manager = races.mp_context().Manager()  # stopped by the harness after the run
    return SimpleNamespace(
        box=manager.dict({"tickets": 5, "money": 0}),
        ticket_lock=races.Lock("ticket_lock"),
        till_lock=races.Lock("till_lock"),
    )


def move(box, tickets, money):
    box["tickets"] = box["tickets"] + tickets
    box["money"] = box["money"] + money


def buyer(state):
    with state.ticket_lock:
        races.point("holding_one")  # one lock held, the other wanted
        with state.till_lock:
            move(state.box, -1, PRICE)


def refund_till_first(state):
    with state.till_lock:  # the bug: the opposite order from buyer
        races.point("holding_one")
        with state.ticket_lock:
            move(state.box, +1, -PRICE)


def refund_tickets_first(state):
    with state.ticket_lock:  # the fix: the same order as buyer
        races.point("holding_one")
        with state.till_lock:
            move(state.box, +1, -PRICE)


def books_balance(state):
    box = dict(state.box)
    assert box == {"tickets": 5, "money": 0}, f"after one sale and one refund the box holds {box}"


SCENARIO = Scenario(
    name="lock_order_inversion",
    setup=setup,
    buggy={"buyer": buyer, "refund": refund_till_first},
    fixes={"one_order": {"buyer": buyer, "refund": refund_tickets_first}},
    schedule=["buyer:till_lock.acquire", "refund:ticket_lock.acquire"],
    expect="deadlock",
    invariant=books_balance,
    options={"stress": {"hangs": "its deadlock", "align": "holding_one", "delays": {"holding_one": 0.01}}},
)
