"""races.Value / races.Array against multiprocessing's, in both backends."""
from __future__ import annotations

import ctypes
import functools
import multiprocessing
from types import SimpleNamespace


import races
from tests.backends import outcome


def assign(obj, attr, value):
    setattr(obj, attr, value)


def setitem(obj, index, value):
    obj[index] = value


def increment_locked(v):
    with v.get_lock():
        v.value += 1
    return v.value


def value_script(v, d):
    return [
        outcome(lambda: v.value), outcome(assign, v, "value", 7), outcome(lambda: v.value),
        outcome(assign, v, "value", 1.5), outcome(assign, v, "value", "x"),
        outcome(assign, v, "value", 2**40 + 5), outcome(lambda: v.value),
        outcome(increment_locked, v),
        outcome(lambda: d.value), outcome(assign, d, "value", 3), outcome(lambda: d.value),
        outcome(lambda: hasattr(d, "get_lock")),
    ]


def array_script(a, c):
    return [
        outcome(lambda: a[:]), outcome(len, a), outcome(setitem, a, 0, 5), outcome(lambda: a[0]),
        outcome(lambda: a[-1]), outcome(lambda: a[3]), outcome(setitem, a, 3, 1),
        outcome(setitem, a, slice(0, 2), [1]), outcome(setitem, a, slice(0, 2), [7, 8]),
        outcome(setitem, a, 1, "x"), outcome(lambda: a[::2]), outcome(list, a),
        outcome(lambda: c.value), outcome(lambda: c.raw), outcome(lambda: c[0]), outcome(lambda: c[1:]),
        outcome(assign, c, "value", b"yo!"), outcome(assign, c, "value", b"y"), outcome(lambda: c.raw),
        outcome(setitem, c, 0, b"Z"), outcome(lambda: c[:]),
    ]


def real_expected():
    v = multiprocessing.Value("i", 3)
    d = multiprocessing.Value("d", 0.5, lock=False)
    a = multiprocessing.Array("i", 3)
    c = multiprocessing.Array("c", b"hi!")
    return value_script(v, d), array_script(a, c)


def setup(expected=None):
    return SimpleNamespace(
        v=races.Value("i", 3, name="v"), d=races.Value(ctypes.c_double, 0.5, lock=False),
        a=races.Array("i", 3, name="a"), c=races.Array("c", b"hi!"), expected=expected,
        n=races.Value("i", 0, name="n"), slots=races.Array("i", [0, 0]),
    )


def run_scripts(s):
    assert value_script(s.v, s.d) == s.expected[0]
    assert array_script(s.a, s.c) == s.expected[1]


def test_value_and_array_match_multiprocessing(backend):
    result = races.run(functools.partial(setup, real_expected()), [run_scripts], **backend)
    assert not result.failed, result.report()
    assert {e.kind for e in result.trace if e.label in ("v", "a")} == {"value"}


def test_value_and_array_outside_the_harness():
    assert value_script(races.Value("i", 3), races.Value("d", 0.5, lock=False)) == real_expected()[0]
    assert array_script(races.Array("i", 3), races.Array("c", b"hi!")) == real_expected()[1]
    assert isinstance(races.Value("i").get_lock(), races.RLock)


def unlocked_increment(s):
    value = s.n.value
    races.point("read")
    s.n.value = value + 1


def locked_increment(s):
    with s.n.get_lock():
        value = s.n.value
        races.point("read")
        s.n.value = value + 1
    s.slots[int(races.in_task()[1])] = 1


def counted_twice(s):
    assert s.n.value == 2, f"lost update: n={s.n.value}"


def test_lost_update_on_value_is_found_and_lock_fixes_it(backend):
    result = races.run(setup, [unlocked_increment] * 2, counted_twice, schedule=["t0:read", "t1:read"], **backend)
    assert result.failure.kind == "invariant"
    assert "lost update: n=1" in result.failure.message
    result = races.run(setup, [locked_increment] * 2, counted_twice, **backend)
    assert not result.failed, result.report()
    result = races.run(setup, [locked_increment] * 2, schedule=["t0:read", "t1:read"], **backend)
    assert result.failure.kind == "schedule"


def prefilled_setup():
    s = setup()
    s.n.value = 40
    s.slots[1] = 9
    return s


def reads_prefilled(s):
    assert s.n.value == 40
    assert s.slots[:] == [0, 9]
    s.n.value = 41


def test_setup_writes_reach_tasks_and_task_writes_reach_the_invariant(backend):
    def invariant(s):
        assert s.n.value == 41

    result = races.run(prefilled_setup, [reads_prefilled], invariant, **backend)
    assert not result.failed, result.report()
