"""Lock granularity (粒度): the lock covers the write but not the check, and two tickets sell.

The pattern.  The notes on granularity (粒度): 粒度越大意味着锁住的代码越多,
效率越低; 粒度越小 ... 效率越高 — the more code a lock covers the slower,
the less the faster; "a lock can cover any code, even one line, you choose
the granularity."  So a buyer in the ticket exercise (抢票) reads
``ticket.json`` and decides there is a ticket without the lock, and takes
the lock only for the one thing that changes the file: writing
``count - 1`` back and logging the sale.

What goes wrong.  The lock makes each write whole, but the decision was
taken before it, on a count that may be stale by the time the lock is
granted.  ``buyer0`` reads ``count: 1`` and stands at the lock; ``buyer1``
reads ``count: 1`` too and queues behind it.  ``buyer0`` writes 0 and sells;
then ``buyer1`` writes 0 and sells as well: two tickets for one.  The lock
is too fine: a check-then-act is one critical section, not two.  The
schedule ``["buyer0:acquire", "buyer1:acquire"]`` brings both buyers to the
lock after their checks: an ``invariant`` failure, every time.  For a real
run (``races.stress``) the buyers line up at ``races.point("checked")``,
between the check and the lock.

The fix.  Lock the whole check-and-buy, as the notes' ``task(lock)`` does
around ``buy_ticket()``: the smallest granularity that is still correct is
the whole read-decide-write.  Under the same schedule both buyers stand at
the lock *before* reading; whoever gets it first sells, the other reads
``count: 0`` afterwards, and the run passes.
"""
from __future__ import annotations

import functools
import json
import os
import shutil
import tempfile

import races
from races.scenario import Scenario

# the files live on a RAM disk when there is one: the run then times the
# harness and the race, not the disk
SCRATCH = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None

BUYERS = 3


def setup():
    folder = tempfile.mkdtemp(prefix="races-granularity-", dir=SCRATCH)
    with open(os.path.join(folder, "ticket.json"), "w", encoding="utf-8") as f:
        json.dump({"count": 1}, f)
    return {"folder": folder, "lock": races.Lock("ticket_lock")}


def read_count(state):
    with open(os.path.join(state["folder"], "ticket.json"), "rt", encoding="utf-8") as f:
        return json.load(f)["count"]


def write_sale(state, buyer, count):
    with open(os.path.join(state["folder"], "ticket.json"), "wt", encoding="utf-8") as f:
        json.dump({"count": count}, f)
    with open(os.path.join(state["folder"], "sold.txt"), "a", encoding="utf-8") as f:
        f.write(f"buyer{buyer}\n")  # 恭喜你抢票成功


def buyer_locking_the_write(buyer, state):
    count = read_count(state)  # the bug: the check is outside the lock
    races.point("checked")  # the window: between the check and the lock
    if count > 0:
        with state["lock"]:
            write_sale(state, buyer, count - 1)


def buyer_locking_everything(buyer, state):
    with state["lock"]:  # the fix: check and buy are one critical section
        count = read_count(state)
        if count > 0:
            write_sale(state, buyer, count - 1)


def at_most_one_ticket_sold(state):
    try:
        with open(os.path.join(state["folder"], "sold.txt"), encoding="utf-8") as f:
            sold = f.read().split()
    except FileNotFoundError:
        sold = []
    assert len(sold) <= 1, f"{len(sold)} tickets sold ({', '.join(sold)}), but there was only 1"


def teardown(state):
    shutil.rmtree(state["folder"], ignore_errors=True)


def buyers(task):
    return {f"buyer{i}": functools.partial(task, i) for i in range(BUYERS)}


SCENARIO = Scenario(
    name="lock_granularity",
    setup=setup,
    buggy=buyers(buyer_locking_the_write),
    fixes={"lock_check_and_buy": buyers(buyer_locking_everything)},
    schedule=["buyer0:acquire", "buyer1:acquire"],
    expect="invariant",
    invariant=at_most_one_ticket_sold,
    teardown=teardown,
    options={"stress": {"align": "checked", "delays": {"checked": 0.01}}},
)
