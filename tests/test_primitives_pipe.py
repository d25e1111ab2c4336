"""races.Pipe against multiprocessing.Pipe, in both backends."""
from __future__ import annotations

import functools
import multiprocessing
from types import SimpleNamespace


import races
from tests.backends import outcome


def duplex_script(a, b):
    return [
        outcome(b.poll), outcome(b.poll, 0.01), outcome(lambda: (a.readable, a.writable)),
        outcome(a.send, {"x": [1, 2]}), outcome(a.send, None), outcome(b.poll),
        outcome(b.recv), outcome(b.recv), outcome(b.poll),
        outcome(b.send, "back"), outcome(a.send_bytes, b"abcdef", 1, 3), outcome(a.poll, None),
        outcome(a.recv), outcome(b.recv_bytes),
        outcome(a.send_bytes, b"xy", 3),
        outcome(a.close), outcome(lambda: a.closed), outcome(a.send, 1), outcome(a.recv), outcome(a.poll),
        outcome(a.close),
        outcome(b.poll), outcome(b.recv),
    ]


def oneway_script(r, w):
    return [
        outcome(lambda: (r.readable, r.writable, w.readable, w.writable)),
        outcome(r.send, 1), outcome(w.recv), outcome(w.poll),
        outcome(w.send, "last"), outcome(w.close), outcome(r.poll), outcome(r.recv),
        outcome(r.poll), outcome(r.recv), outcome(r.recv_bytes), outcome(w.send, 2),
        outcome(r.close), outcome(lambda: r.closed),
    ]


def reference():
    """CPython's outcomes, computed outside any run (setup() runs in patch mode)."""
    ra, rb = multiprocessing.Pipe()
    rr, rw = multiprocessing.Pipe(duplex=False)
    return duplex_script(ra, rb), oneway_script(rr, rw)


def setup(expected=None):
    a, b = races.Pipe(name="P")
    r, w = races.Pipe(duplex=False, name="Q")
    data_r, data_w = races.Pipe(duplex=False, name="data")
    return SimpleNamespace(a=a, b=b, r=r, w=w, expected=expected, data_r=data_r, data_w=data_w)


def run_scripts(s):
    assert duplex_script(s.a, s.b) == s.expected[0]
    assert oneway_script(s.r, s.w) == s.expected[1]


def test_pipe_matches_multiprocessing(backend):
    result = races.run(functools.partial(setup, reference()), [run_scripts], **backend)
    assert not result.failed, result.report()


def test_pipe_outside_the_harness():
    a, b = races.Pipe()
    ra, rb = multiprocessing.Pipe()
    assert duplex_script(a, b) == duplex_script(ra, rb)
    r, w = races.Pipe(duplex=False)
    rr, rw = multiprocessing.Pipe(duplex=False)
    assert oneway_script(r, w) == oneway_script(rr, rw)


def sender(s):
    for i in range(4):
        s.data_w.send(("item", i, "x" * i))
    s.data_w.close()


def receiver(s):
    got = []
    while True:
        try:
            got.append(s.data_r.recv())
        except EOFError:
            break
    assert got == [("item", i, "x" * i) for i in range(4)], got


def test_messages_cross_tasks_and_eof_ends_the_stream(backend):
    for tasks in ({"r": receiver, "s": sender}, {"s": sender, "r": receiver}):
        result = races.run(setup, tasks, **backend)
        assert not result.failed, result.report()


def lonely_receiver(s):
    s.data_r.recv()


def test_recv_nobody_sends_on_is_blocked(backend):
    result = races.run(setup, {"r": lonely_receiver}, **backend)
    assert result.failure.kind == "blocked"
    message = result.failure.message
    assert "r waits forever in Connection.recv on data end 0 at tests/test_primitives_pipe.py:" in message
    assert "no task will send on it" in message


def timed_poll(s):
    assert s.data_r.poll(7) is False
    races.point("gave_up")


def test_poll_timeout_is_virtual(backend):
    result = races.run(setup, [timed_poll], **backend)
    assert not result.failed, result.report()
    assert next(e for e in result.trace if e.name == "gave_up").clock == 7.0
