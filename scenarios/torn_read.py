"""Torn read (查票 without the lock): a reader opens ticket.json mid-write and finds it empty.

The pattern.  The notes' locked ticket exercise (小练习 —— 抢票): each buyer
looks at the tickets (查票, ``check_ticket``) without the lock, then takes the
lock to buy (买票).  Buying rewrites ``ticket.json`` with
``open('ticket.json', 'wt')`` and ``json.dump(data, f)``.  Only the buy
changes anything, so leaving the read-only 查票 outside the lock looks safe.

What goes wrong.  ``open(..., 'w')`` truncates the file at once; the new
JSON arrives only with ``json.dump`` (and reaches the disk when the file is
flushed).  A reader that opens the file in between, holding no lock because
it "only reads", gets an empty file, and ``json.load`` raises
``json.JSONDecodeError: Expecting value``.  The window is a few
microseconds, so this crashes a buyer once in a blue moon.  Here a sync
point, ``truncated``, stands between the truncating open and the dump, and
the schedule ``["buyer0:truncated", "buyer1"]`` lets ``buyer1`` do its 查票
exactly there: an ``exception`` in ``buyer1``, every time, in threads or
processes.

The fixes.  ``atomic_replace``: never let a reader see a half-written file.
Write the new JSON to a temporary file in the same folder and
``os.replace`` it over ``ticket.json``; a rename is atomic, so a reader
sees the old content or the new, never an empty file.  Under the same
schedule ``buyer1`` reads the old count and the run passes.
``lock_reads``: take the same lock for 查票 too; under the schedule
``buyer1`` waits at the lock until the write is complete, and the run passes.
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
    folder = tempfile.mkdtemp(prefix="races-torn-", dir=SCRATCH)
    with open(os.path.join(folder, "ticket.json"), "w", encoding="utf-8") as f:
        json.dump({"count": 1}, f)
    return {"folder": folder, "lock": races.Lock("ticket_lock")}


def check_ticket(state):
    """查票: read the count."""
    with open(os.path.join(state["folder"], "ticket.json"), "rt", encoding="utf-8") as f:
        return json.load(f)["count"]


def write_in_place(path, data):
    with open(path, "wt", encoding="utf-8") as f:  # the file is empty from here...
        races.point("truncated")
        json.dump(data, f)  # ...until this is written and flushed


def write_and_replace(path, data):
    fd, temp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
    with os.fdopen(fd, "wt", encoding="utf-8") as f:  # only the temp file is empty
        races.point("truncated")
        json.dump(data, f)
    os.replace(temp, path)  # readers see the old file or the new one


def buy_ticket(state, write):
    """买票 (holding the lock): read, decide, write."""
    path = os.path.join(state["folder"], "ticket.json")
    with open(path, "rt", encoding="utf-8") as f:
        data = json.load(f)
    if data["count"] > 0:
        data["count"] -= 1
        write(path, data)


def buyer(write, lock_reads, state):
    if lock_reads:
        with state["lock"]:
            check_ticket(state)
    else:
        check_ticket(state)  # the bug: a read without the lock
    with state["lock"]:
        buy_ticket(state, write)


def one_ticket_sold(state):
    count = check_ticket(state)
    assert count == 0, f"the count is {count} after the only ticket was bought"


def teardown(state):
    shutil.rmtree(state["folder"], ignore_errors=True)


def buyers(write, lock_reads=False):
    task = functools.partial(buyer, write, lock_reads)
    return {f"buyer{i}": task for i in range(BUYERS)}


SCENARIO = Scenario(
    name="torn_read",
    setup=setup,
    buggy=buyers(write_in_place),
    fixes={"atomic_replace": buyers(write_and_replace), "lock_reads": buyers(write_in_place, True)},
    schedule=["buyer0:truncated", "buyer1"],
    expect="exception",
    invariant=one_ticket_sold,
    teardown=teardown,
    options={"stress": {"align": "truncated", "delays": {"truncated": 0.01}}},
)
