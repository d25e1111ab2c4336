"""granularity="line": a possible switch at every line of user code, and plain
attribute and global accesses seen by the race detector (issues 5 and 6)."""
from __future__ import annotations

import inspect
import math
import sys
import threading
from types import SimpleNamespace

import pytest

import races
import scenarios
from races._core import line_trace

MONITORING = sys.version_info >= (3, 12)


@pytest.fixture(autouse=True, scope="module")
def _stop_warm_services():
    """The catalogue's scenarios use races.manager(): stop it so later leak checks see no children."""
    yield
    races.shutdown()


@pytest.fixture(autouse=True)
def _no_tracing_left():
    yield
    assert line_trace.tool_id() is None and line_trace._session.users == 0
    assert not line_trace._session.by_thread and not line_trace._session.by_name
    if MONITORING:
        assert all(sys.monitoring.get_tool(i) != line_trace.TOOL_NAME for i in range(6))


def line_of(function, text):
    """The line number of the line of ``function`` that contains ``text``."""
    lines, start = inspect.getsourcelines(function)
    (found,) = [start + i for i, line in enumerate(lines) if text in line]
    return found


HERE = __file__.rsplit("/", 1)[-1]


# -- issue 5's acceptance: the lost update, found without points ------------------


class Counter:
    def __init__(self):
        self.value = 0

    def increment(self):
        self.value = self.value + 1


def bump(counter):
    counter.increment()


def both_counted(counter):
    assert counter.value == 2, f"lost update: value={counter.value}"


def test_lost_update_on_a_plain_attribute_is_found_and_reported_with_its_lines():
    tasks = [bump, bump]
    coarse = races.explore(Counter, tasks, both_counted)
    assert not coarse.failed and coarse.exhaustive  # no sync point inside the increment

    result = races.explore(Counter, tasks, both_counted, granularity="line")
    assert result.failure.kind == "invariant" and "lost update: value=1" in result.failure.message
    line = line_of(Counter.increment, "self.value = self.value + 1")
    where = f"{HERE}:{line}"
    # the read and the write of that one line are split by a point of its own
    names = [e.name for e in result.trace if e.kind == "point"]
    assert f"{HERE}@{line}" in names and f"{HERE}@{line}.write" in names
    # the report names the two conflicting lines (the detector runs in report mode)
    assert result.races and {r.location for r in result.races} == {"Counter.value"}
    race = result.races[0]
    assert race.first.where.endswith(where) and race.second.where.endswith(where)
    assert {race.first.task, race.second.task} == {"t0", "t1"}
    report = result.report()
    assert "data race on Counter.value" in report and where in report
    assert "granularity='line'" in report  # the replay line
    again = races.replay(result.token, Counter, tasks, both_counted, granularity="line")
    assert again.trace == result.trace and again.failure.kind == "invariant"


def test_a_serial_run_reports_the_race_with_detect_races_true():
    result = races.run(Counter, [bump, bump], detect_races=True, granularity="line")
    assert result.failure.kind == "race"
    message = result.failure.message
    line = line_of(Counter.increment, "self.value = self.value + 1")
    assert "WARNING: DATA RACE on Counter.value" in message
    assert "Read by task t1 at " in message and f"{HERE}:{line} (self.value)" in message
    assert "Previous write by task t0" in message
    assert f"{HERE}:{line} in increment()" in message and "in bump()" in message  # the short stack
    assert "Why: no lock held in common (t0 held no lock, t1 held no lock), no happens-before" in message


def test_without_detection_line_granularity_is_only_switches():
    result = races.run(Counter, [bump, bump], detect_races=False, granularity="line")
    assert result.failure is None and result.races == []
    assert result.options["granularity"] == "line"


# -- access kinds ----------------------------------------------------------------------


def box():
    return SimpleNamespace(n=0, flag=False, stats=SimpleNamespace(count=0), gone=1)


def detect(tasks, setup=box, **options):
    result = races.run(setup, tasks, detect_races="report", granularity="line", **options)
    assert result.failure is None, result.report()
    return result


def kinds(result):
    return sorted(tuple(sorted(r.kinds)) for r in result.races)


def test_attribute_write_and_read():
    def write(s):
        s.flag = True

    def read(s):
        return s.flag

    result = detect({"w": write, "r": read})
    assert [r.location for r in result.races] == ["SimpleNamespace.flag"]
    assert kinds(result) == [("read", "write")]
    race = result.races[0]
    assert (race.first.task, race.first.kind, race.second.task, race.second.kind) == ("w", "write", "r", "read")
    assert race.first.op == "s.flag" and race.first.where.endswith(f"{HERE}:{line_of(write, 's.flag = True')}")


def test_attribute_write_and_write():
    def write(s):
        s.flag = True

    assert kinds(detect([write, write])) == [("write", "write")]


def test_reads_alone_do_not_race():
    def read(s):
        return s.n + s.flag

    assert detect([read, read]).races == []


def test_augmented_assignment_and_delete():
    def add(s):
        s.n += 1

    def delete(s):
        del s.gone

    def read(s):
        try:
            return s.gone
        except AttributeError:  # deleted first
            return None

    assert kinds(detect([add, add])) == [("read", "write"), ("write", "write")]
    assert kinds(detect({"d": delete, "r": read})) == [("read", "write")]


def test_attribute_chain():
    def count(s):
        s.stats.count = s.stats.count + 1

    result = detect([count, count])
    assert {r.location for r in result.races} == {"SimpleNamespace.count"}
    # the intermediate object is read, never written: s.stats itself does not race
    assert all(r.first.op == "s.stats.count" for r in result.races)


def test_closure_variables_are_bases():
    counter = Counter()

    def closure(_):
        counter.value = counter.value + 1  # LOAD_DEREF

    result = detect([closure, closure], setup=lambda: None)
    assert {r.location for r in result.races} == {"Counter.value"}


def test_two_objects_never_merge():
    def pair():
        return SimpleNamespace(a=Counter(), b=Counter())

    def on_a(s):
        s.a.value = 1

    def on_b(s):
        s.b.value = 1

    assert detect([on_a, on_b], setup=pair).races == []
    assert [r.location for r in detect([on_a, on_a], setup=pair).races] == ["Counter.value"]


TOTAL = 0


def reset_total():
    global TOTAL
    TOTAL = 0
    return None


def add_to_total(_):
    global TOTAL
    TOTAL = TOTAL + 1


def read_total(_):
    return TOTAL


def test_module_global_write_and_read():
    result = detect({"w": add_to_total, "r": read_total}, setup=reset_total)
    assert len(result.races) == 1
    race = result.races[0]
    assert race.location.endswith("test_line_granularity.TOTAL")
    assert race.kinds == ("write", "read") and race.second.op == "TOTAL"
    assert kinds(detect([add_to_total, add_to_total], setup=reset_total)) == [("read", "write"), ("write", "write")]


def helper(x):
    return x


class Thing:
    pass


def uses_functions_classes_modules(_):
    return helper(Thing()), math.sqrt(4), len([1])


def rebinds_nothing(_):
    return helper(1), Thing, math.pi


def test_functions_classes_modules_and_builtins_are_not_data():
    assert detect([uses_functions_classes_modules, rebinds_nothing], setup=reset_total).races == []


def test_method_calls_are_not_attribute_reads():
    def call(c):
        c.increment()

    def rebind(c):
        c.increment = None

    # c.increment() loads a method: a read that could race with the rebinding on
    # 3.10 (LOAD_METHOD) and 3.12+ (LOAD_ATTR's method flag) is not reported
    assert detect([call, rebind], setup=Counter).races == []


def test_shared_wrappers_are_not_seen_twice():
    def setup():
        return SimpleNamespace(box=races.shared(SimpleNamespace(n=0), name="box"))

    def write(s):
        s.box.n = 1

    result = detect([write, write], setup=setup)
    assert [r.location for r in result.races] == ["box.n"]  # the wrapper's own report only


# -- happens-before edges ---------------------------------------------------------------


class LockedCounter(Counter):
    def __init__(self):
        super().__init__()
        self.lock = threading.Lock()

    def increment(self):
        with self.lock:
            self.value = self.value + 1

    def increment_one_line(self):
        with self.lock: self.value += 1  # noqa: E701 - the lock and the access on one line


def test_a_lock_orders_the_accesses():
    def locked(c):
        c.increment()

    def unlocked(c):
        Counter.increment(c)

    assert detect([locked, locked], setup=LockedCounter).races == []
    result = races.explore(LockedCounter, [locked, locked], both_counted, granularity="line", detect_races=True)
    assert not result.failed and result.exhaustive, result.report()
    # the edge is what makes it silent: the same accesses without the lock race
    assert {r.location for r in detect([unlocked, unlocked], setup=LockedCounter).races} == {"LockedCounter.value"}
    # held by one task only: still a race
    assert detect([locked, unlocked], setup=LockedCounter).races


def test_a_lock_on_the_same_line_as_the_access():
    def one_line(c):
        c.increment_one_line()

    assert detect([one_line, one_line], setup=LockedCounter).races == []
    result = races.explore(LockedCounter, [one_line, one_line], both_counted, granularity="line",
                           detect_races=True)
    assert not result.failed, result.report()


def test_accesses_after_a_call_on_the_same_line_count_after_it():
    # s.data is read after the get() on its line: ordered after the put by the queue's edge
    def setup():
        return SimpleNamespace(q=races.Queue(), data=0, seen=None)

    def produce(s):
        s.data = 42
        s.q.put(1)

    def consume(s):
        s.seen = s.q.get() + s.data

    result = races.explore(setup, {"p": produce, "c": consume}, granularity="line", detect_races=True)
    assert not result.failed and result.exhaustive, result.report()

    def consume_early(s):
        s.seen = s.data + s.q.get()  # read before the get: a race

    result = races.run(setup, {"p": produce, "c": consume_early}, granularity="line", detect_races=True)
    assert result.failure.kind == "race" and result.races[0].location == "SimpleNamespace.data"


def test_join_and_event_edges():
    def setup():
        return SimpleNamespace(done=races.Event(), value=0)

    def write(s):
        s.value = 1
        s.done.set()

    def read(s):
        s.done.wait()
        return s.value

    assert detect({"w": write, "r": read}, setup=setup).races == []


def child_bump(s):
    s.n = s.n + 1


def test_threads_started_from_a_task_are_traced_too():
    def racy(s):
        t = threading.Thread(target=child_bump, args=(s,))
        t.start()
        s.n = s.n + 1
        t.join()

    def joined(s):
        t = threading.Thread(target=child_bump, args=(s,))
        t.start()
        t.join()
        s.n = s.n + 1

    result = detect([racy])
    assert {r.location for r in result.races} == {"SimpleNamespace.n"}
    assert {r.second.task for r in result.races} == {"t0/Thread-1 (child_bump)"}
    assert detect([joined]).races == []  # start and join order them
    lost = races.explore(box, [racy], lambda s: s.n == 2, granularity="line")
    assert lost.failure.kind == "invariant"


def test_a_single_task_never_races():
    def alone(c):
        for _ in range(3):
            c.value = c.value + 1
        return c.value

    assert detect([alone], setup=Counter).races == []


def test_a_pair_seen_twice_is_reported_once():
    def loop(c):
        for _ in range(3):
            c.value = c.value + 1

    result = races.run(Counter, [loop, loop], detect_races=True, granularity="line")
    assert result.failure.kind == "race"
    assert kinds(result) == [("read", "write"), ("write", "write")]
    assert result.failure.message.startswith("2 data races detected")


@pytest.mark.parametrize("name,variant", [
    pytest.param(name, f"fixed:{variant}", id=f"{name}-{variant}")
    for name in scenarios.NAMES if "thread" in scenarios.load(name).backends
    for variant in scenarios.load(name).fixes
])
def test_the_catalogue_fixes_stay_silent_at_line_granularity(name, variant):
    scenario = scenarios.load(name)

    def watch(state):
        return [state["folder"]] if isinstance(state, dict) and "folder" in state else []

    result = scenario.run(variant, schedule=[], detect_races=True, watch=watch, backend="thread",
                          granularity="line")
    assert result.races == [], "\n\n".join(r.describe() for r in result.races)
    assert result.failure is None or result.failure.kind != "race"


# -- how lines are seen, and that it all goes away --------------------------------------


def probe(state):
    state.trace = sys.gettrace()
    state.tool = line_trace.tool_id()
    if MONITORING:
        state.tools = {i: sys.monitoring.get_tool(i) for i in range(6)}
    state.value = 1


@pytest.mark.skipif(not MONITORING, reason="sys.monitoring is 3.12+")
def test_monitoring_uses_a_tool_id_other_than_the_debugger_one_and_frees_it():
    before = {i: sys.monitoring.get_tool(i) for i in range(6)}
    state = SimpleNamespace()
    result = races.run(lambda: state, [probe], granularity="line")
    assert result.failure is None, result.report()
    assert state.trace is None  # no sys.settrace on this path
    assert state.tool is not None and state.tool != sys.monitoring.DEBUGGER_ID
    assert state.tool == sys.monitoring.OPTIMIZER_ID or before[sys.monitoring.OPTIMIZER_ID] is not None
    assert state.tools[state.tool] == line_trace.TOOL_NAME
    assert state.tools[sys.monitoring.DEBUGGER_ID] == before[sys.monitoring.DEBUGGER_ID]
    assert {i: sys.monitoring.get_tool(i) for i in range(6)} == before  # freed


@pytest.mark.skipif(not MONITORING, reason="sys.monitoring is 3.12+")
def test_monitoring_fails_over_to_another_free_id():
    optimizer = sys.monitoring.OPTIMIZER_ID
    if sys.monitoring.get_tool(optimizer) is not None:
        pytest.skip("OPTIMIZER_ID is taken already")
    sys.monitoring.use_tool_id(optimizer, "someone else")
    try:
        state = SimpleNamespace()
        result = races.run(Counter, [bump, bump], both_counted, granularity="line",
                           schedule=["t0:" + f"{HERE}@{line_of(Counter.increment, 'self.value =')}.write", "t1"])
        assert result.failure.kind == "invariant"  # the switches work under the other id
        races.run(lambda: state, [probe], granularity="line")
        assert state.tool not in (optimizer, sys.monitoring.DEBUGGER_ID)
        assert sys.monitoring.get_tool(optimizer) == "someone else"
    finally:
        sys.monitoring.free_tool_id(optimizer)


@pytest.mark.skipif(not MONITORING, reason="sys.monitoring is 3.12+")
def test_every_tool_id_taken_falls_back_to_settrace():
    taken = [i for i in line_trace.TOOL_IDS if sys.monitoring.get_tool(i) is None]
    for i in taken:
        sys.monitoring.use_tool_id(i, "someone else")
    try:
        state = SimpleNamespace()
        races.run(lambda: state, [probe], granularity="line")
        assert state.tool is None and getattr(state.trace, "__self__", None).__class__ is line_trace.TaskLines
        result = races.explore(Counter, [bump, bump], both_counted, granularity="line")
        assert result.failure.kind == "invariant"
        assert all(sys.monitoring.get_tool(i) == "someone else" for i in taken)
    finally:
        for i in taken:
            sys.monitoring.free_tool_id(i)


@pytest.mark.skipif(MONITORING, reason="3.10-3.11 use sys.settrace")
def test_settrace_path_before_3_12():
    state = SimpleNamespace()
    outside = sys.gettrace()
    result = races.run(lambda: state, [probe], granularity="line")
    assert result.failure is None, result.report()
    assert state.tool is None
    assert getattr(state.trace, "__self__", None).__class__ is line_trace.TaskLines
    assert sys.gettrace() is outside


def raiser(state):
    state.value = 1
    raise ValueError("boom")


def test_tracing_is_gone_after_a_task_raises():
    result = races.run(SimpleNamespace, [raiser], granularity="line", detect_races=True)
    assert result.failure.kind == "exception" and "boom" in result.failure.message
    # (the autouse fixture checks the tool id and the session are gone)

    def contained(state):
        try:
            line_trace.LineTraced(raiser)(state)  # a task of its own, inside this one
        except ValueError:
            pass
        state.after = (sys.gettrace(), line_trace.tool_id(), line_trace._session.users)

    state = SimpleNamespace()
    assert races.run(lambda: state, [contained]).failure is None
    assert state.after == (None, None, 0)
    plain = races.run(Counter, [bump, bump], both_counted)  # and the next run has no line points
    assert [e.kind for e in plain.trace] == ["start", "end", "start", "end"]


def test_outside_a_run_a_line_traced_task_just_runs():
    state = SimpleNamespace()
    line_trace.LineTraced(probe)(state)
    assert state.value == 1 and state.tool is None


def test_process_backend_and_bad_values_are_refused():
    with pytest.raises(ValueError, match="granularity='line' needs backend='thread'"):
        races.run(Counter, [bump], granularity="line", backend="process")
    with pytest.raises(ValueError, match="granularity='line' needs backend='thread'"):
        races.explore(Counter, [bump], granularity="line", backend="process")
    with pytest.raises(ValueError, match="granularity must be one of step, line"):
        races.run(Counter, [bump], granularity="statement")


def test_the_pytest_marker_takes_granularity(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_ADDOPTS", "-p no:hypothesispytest -W ignore::pytest.PytestAssertRewriteWarning")
    pytester.makepyfile(test_inner="""
        import pytest

        class Counter:
            def __init__(self):
                self.value = 0

        def bump(counter):
            counter.value = counter.value + 1

        def both(counter):
            assert counter.value == 2, "lost update"

        @pytest.mark.races(granularity="line")
        def test_found(races):
            with pytest.raises(AssertionError, match="lost update"):
                races.check(Counter, [bump, bump], both)

        def test_not_found_without(races):
            races.check(Counter, [bump, bump], both)
    """)
    pytester.runpytest().assert_outcomes(passed=2)


# -- the bytecode analysis --------------------------------------------------------------


def planned(function, text):
    """(kind, expression, late) of the accesses ``function``'s line with ``text`` makes."""
    code = function.__code__
    line = line_of(function, text)
    instructions, lines, _ = line_trace._code_instructions(code)
    start = next(ins.offset for ins, ln in zip(instructions, lines) if ln == line)
    return [(kind, expr, late) for _, kind, _, _, expr, late in line_trace.plan(code, start)]


def shapes(s, obj, items):
    s.value = s.value + 1
    s.value += 1
    obj.a.b = s.c
    del obj.gone
    s.method()
    x = s.total + len(items)
    s.result = helper(x) + s.extra
    with s.lock: s.n += 1  # noqa: E701
    return x


class Base:
    flag = 1


class Derived(Base):
    def method(self, x):
        self.x = x
        return super().flag


def test_plan_finds_each_shape():
    assert planned(Derived.method, "self.x = x") == [("write", "self.x", False)]  # 3.13: LOAD_FAST_LOAD_FAST
    assert [e for e in planned(Derived.method, "super().flag") if e[1] != "super"] == []  # LOAD_SUPER_ATTR
    assert planned(shapes, "s.value = s.value + 1") == [("read", "s.value", False), ("write", "s.value", True)]
    assert planned(shapes, "s.value += 1") == [("read", "s.value", False), ("write", "s.value", True)]
    assert planned(shapes, "obj.a.b = s.c") == [("read", "s.c", False), ("read", "obj.a", False),
                                               ("write", "obj.a.b", True)]
    assert planned(shapes, "del obj.gone") == [("write", "obj.gone", False)]
    assert planned(shapes, "s.method()") == []
    reads = [e for e in planned(shapes, "x = s.total") if e[1] != "len"]  # 3.10: LOAD_GLOBAL len
    assert reads == [("read", "s.total", False)]
    after_call = [e for e in planned(shapes, "s.result = helper(x)") if e[1] != "helper"]
    assert after_call == [("read", "s.extra", True), ("write", "s.result", True)]
    assert planned(shapes, "with s.lock: s.n += 1")[:3] == [
        ("read", "s.lock", False), ("read", "s.n", True), ("write", "s.n", True)]
    assert line_trace.switches(shapes.__code__)  # the read-modify-write lines get a switch
