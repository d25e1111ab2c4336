"""Ticket oversell (抢票): check, then buy, with no lock, sells two tickets.

The pattern.  The notes' ticket exercise (小练习 —— 抢票): a JSON file
``ticket.json`` holds ``{"count": 1}``; ten buyers each look at it (查票) and
then buy (买票): read the count and, if a ticket is left, write back
``count - 1`` and celebrate (恭喜你抢票成功).

What goes wrong.  Buying is read, decide, write.  Buyer 0 reads ``count: 1``
and decides to buy; before it writes ``count: 0`` back, buyer 1 reads
``count: 1`` too.  Both write ``count: 0``, both celebrate: two tickets sold
where one existed.  The notes widen the window with a random
``time.sleep`` (模拟延迟, "simulated delay") between decision and write, which
makes the oversell likely but never certain.  Here that delay is a named sync
point, ``paying``, and the schedule ``["buyer0:paying", "buyer1:paying"]``
parks both buyers there: the bug, every time, in threads or processes.

The fix.  The notes' own ``task(lock)``: one Lock, shared by every buyer,
held around the whole buy (read, decide and write together).  The notes leave
the read-only 查票 outside the lock; that is a race of its own (a reader can
open the file just after a buyer truncated it: see ``torn_read``, and the race
detector reports it), so here the lock covers 查票 too.  Under the same
schedule buyer 1 is blocked at the lock while buyer 0 stands at ``paying``, so
the run reports that interleaving as impossible (failure kind ``schedule``),
and any order sells exactly one ticket.
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

BUYERS = 10


def setup():
    folder = tempfile.mkdtemp(prefix="races-ticket-", dir=SCRATCH)
    with open(os.path.join(folder, "ticket.json"), "w", encoding="utf-8") as f:
        json.dump({"count": 1}, f)
    return {"folder": folder, "lock": races.Lock("ticket_lock")}


def check_ticket(state):
    """查票: read the count (the notes print it)."""
    with open(os.path.join(state["folder"], "ticket.json"), "rt", encoding="utf-8") as f:
        return json.load(f)["count"]


def buy_ticket(state, buyer):
    """买票: read, decide, pay, write; a sale is logged in sold.txt."""
    path = os.path.join(state["folder"], "ticket.json")
    with open(path, "rt", encoding="utf-8") as f:
        data = json.load(f)
    if data["count"] > 0:
        data["count"] -= 1
        races.point("paying")  # the notes: time.sleep(random.randint(0, 3))  # 模拟延迟
        with open(path, "wt", encoding="utf-8") as f:
            json.dump(data, f)
        with open(os.path.join(state["folder"], "sold.txt"), "a", encoding="utf-8") as f:
            f.write(f"buyer{buyer}\n")  # 恭喜你抢票成功


def buyer_without_lock(buyer, state):
    check_ticket(state)
    buy_ticket(state, buyer)


def buyer_with_lock(buyer, state):
    with state["lock"]:
        check_ticket(state)
        buy_ticket(state, buyer)


def tickets_sold(state):
    try:
        with open(os.path.join(state["folder"], "sold.txt"), encoding="utf-8") as f:
            return f.read().split()
    except FileNotFoundError:
        return []


def at_most_one_ticket_sold(state):
    sold = tickets_sold(state)
    assert len(sold) <= 1, f"{len(sold)} tickets sold ({', '.join(sold)}), but there was only 1"


def teardown(state):
    shutil.rmtree(state["folder"], ignore_errors=True)


def buyers(task):
    return {f"buyer{i}": functools.partial(task, i) for i in range(BUYERS)}


SCENARIO = Scenario(
    proof={"tasks": 3},  # proved exhaustively within this (Scenario.prove)
    name="ticket_oversell",
    setup=setup,
    buggy=buyers(buyer_without_lock),
    fixes={"lock": buyers(buyer_with_lock)},
    schedule=["buyer0:paying", "buyer1:paying"],
    expect="invariant",
    invariant=at_most_one_ticket_sold,
    teardown=teardown,
    options={"stress": {"align": "paying", "delays": {"paying": 0.01}}},
)
