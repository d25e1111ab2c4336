"""The notes' own programs (tests/notes_programs.py), run as written in patch
mode: each finishes deterministically or gets the right diagnosis, every run
(thread backend: 100 runs; process backend, forkserver: 20 runs).  No test
sleeps: every ``time.sleep`` in the programs is virtual."""
from __future__ import annotations

import json
import multiprocessing

import pytest

import races
from tests import notes_programs as notes
from tests.leaks import task_processes, task_threads

THREAD_RUNS = 100
PROCESS_RUNS = 20
PROCESS_METHOD = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"

MODES = [
    pytest.param({"backend": "thread"}, THREAD_RUNS, id="thread"),
    pytest.param({"backend": "process", "start_method": PROCESS_METHOD}, PROCESS_RUNS, id="process"),
]


def nothing():
    return None


def line(text, after=0):
    """The line number of ``text`` in notes_programs.py (first one after line ``after``)."""
    with open(notes.__file__, encoding="utf-8") as fh:
        for number, source in enumerate(fh, 1):
            if number > after and text in source:
                return number
    raise AssertionError(text)


def runs(program, mode, count, setup=nothing):
    """``count`` runs of ``program`` as the single task ``main``; all must agree."""
    results = [races.run(setup, {"main": program}, timeout=10, **mode) for _ in range(count)]
    first = results[0]
    for other in results[1:]:
        assert other.steps() == first.steps()
        assert (other.failure and other.failure.kind) == (first.failure and first.failure.kind)
        assert other.warnings == first.warnings
    assert task_threads() == []
    assert task_processes() == []
    return first


@pytest.mark.parametrize("mode, count", MODES)
def test_daemon_demo_reports_the_daemons_lost_second_print(mode, count):
    result = runs(notes.daemon_main, mode, count)
    assert not result.failed, result.report()
    assert ("main/Process-1", "(terminated: terminated by main)") in result.steps()
    (warning,) = result.warnings
    assert "main/Process-1" in warning and "its unfinished work was lost" in warning
    assert "print('睡了一会。。')" in warning
    # the main program's sleep(2) passed on virtual time
    assert [e.clock for e in result.trace if e.name == "sleep"] == [2.0]


@pytest.mark.parametrize("mode, count", MODES)
def test_join_version_runs_the_tasks_one_after_another(mode, count):
    result = runs(notes.join_main, mode, count)
    assert not result.failed, result.report()
    order = [e.task for e in result.trace if e.kind == "end"]
    assert order == ["main/Process-1", "main/Process-2", "main/Process-3", "main"]
    assert result.trace[-1].clock == 18.0  # six sleeps of 3 s, in virtual time


def test_join_version_output(capsys):
    races.run(nothing, {"main": notes.join_main})
    assert capsys.readouterr().out.split() == [
        "你好,阿森。。。", "吃饭", "下雨", "你好,阿三。。。", "吃面", "下雪", "你好,阿四。。。", "吃米", "下冰雹",
    ]


@pytest.mark.parametrize("mode, count", MODES)
def test_lock_version_keeps_each_task_whole(mode, count):
    result = runs(notes.lock_main, mode, count)
    assert not result.failed, result.report()
    holders = [e.task for e in result.trace if e.label == "Lock1"]
    # acquire and release of one child follow each other: nobody else got in
    assert holders == [t for t in holders[::2] for _ in (0, 1)]


def test_lock_version_output_is_not_interleaved(capsys):
    for _ in range(THREAD_RUNS):
        races.run(nothing, {"main": notes.lock_main})
        out = capsys.readouterr().out.split()
        groups = [out[i:i + 3] for i in range(0, len(out), 3)]
        assert sorted(groups) == sorted([
            ["你好,阿森。。。", "吃饭", "下雨"], ["你好,阿三。。。", "吃面", "下雪"], ["你好,阿四。。。", "吃米", "下冰雹"],
        ])


@pytest.mark.parametrize("mode, count", MODES)
def test_double_acquire_as_written_ends_holding_the_lock(mode, count):
    result = runs(notes.double_acquire_main, mode, count)
    assert not result.failed, result.report()
    second = line("l.acquire()", after=line("def double_acquire_main") + 2)
    assert result.warnings == [
        f"task 'main' ended holding Lock1 (acquired at tests/notes_programs.py:{second})"
    ]


@pytest.mark.parametrize("mode, count", MODES)
def test_double_acquire_without_release_is_a_self_deadlock_naming_both_lines(mode, count):
    result = runs(notes.double_acquire_unreleased_main, mode, count)
    assert result.failure.kind == "deadlock"
    message = result.failure.message
    assert "main waits for itself" in message
    first = line("l.acquire()", after=line("def double_acquire_unreleased_main"))
    second = line("l.acquire()", after=first)
    assert f"waits for Lock1 (tests/notes_programs.py:{second})" in message
    assert f"already holds (acquired at tests/notes_programs.py:{first})" in message


def ticket_count():
    with open(notes.TICKET, encoding="utf-8") as fh:
        return json.load(fh)["count"]


@pytest.mark.parametrize("mode, count", MODES)
def test_ticket_sale_sells_the_one_ticket_once(mode, count):
    for _ in range(count):
        result = races.run(notes.ticket_setup, {"main": notes.ticket_main}, timeout=10, **mode)
        assert not result.failed, result.report()
        assert len(result.task_names) == 11
        assert ticket_count() == 0
    assert task_processes() == []


def test_ticket_sale_output(capsys):
    races.run(notes.ticket_setup, {"main": notes.ticket_main})
    out = capsys.readouterr().out
    assert out.count("恭喜你抢票成功") == 1
    assert out.count("抢票失败") == 9


@pytest.mark.parametrize("mode, count", MODES)
def test_manager_dict_children_outlive_the_manager(mode, count):
    result = runs(notes.manager_main, mode, count)
    assert result.failure.kind == "exception"
    message = result.failure.message
    where = line("num = data['num']")
    # the Manager's server process took the name Process-1, as in CPython
    assert result.failure.task == "main/Process-2"
    assert (
        "task main/Process-2 used a Manager proxy (dict.__getitem__) after the Manager was shut down "
        f"(at tests/notes_programs.py:{where})"
    ) in message
    # main printed and ended after its virtual sleep(2), before any child ran
    ends = [e for e in result.trace if e.kind == "end"]
    assert ends[0].task == "main" and ends[0].clock == 2.0


@pytest.mark.parametrize("mode, count", MODES)
def test_queue_demo_ends_with_empty_after_two_virtual_seconds(mode, count):
    result = runs(notes.queue_main, mode, count)
    assert result.failure.kind == "exception"
    assert "raised Empty" in result.failure.message
    last = result.trace[-1]
    assert last.describe() == "Queue1.get" and last.note == "timed out after 2s" and last.clock == 2.0
    assert [e.name for e in result.trace[1:]] == ["put"] * 3 + ["get", "put"] + ["get"] * 4


def test_queue_demo_output(capsys):
    races.run(nothing, {"main": notes.queue_main})
    assert capsys.readouterr().out.split() == ["123", "qwe", "利物浦", "句柄hi"]


@pytest.mark.parametrize("mode, count", MODES)
def test_producer_consumer_passes(mode, count):
    result = runs(notes.producer_consumer_main, mode, count)
    assert not result.failed, result.report()
    gets = [e for e in result.trace if e.task == "main/Process-2" and e.name == "get"]
    puts = [e for e in result.trace if e.task == "main/Process-1" and e.name == "put"]
    assert len(gets) == len(puts) == 6


def test_producer_consumer_output(capsys):
    races.run(nothing, {"main": notes.producer_consumer_main})
    out = capsys.readouterr().out.splitlines()
    assert [line for line in out if "吃完了" in line] == [f"{i}个青椒炒鸡蛋 吃完了" for i in range(6)]


@pytest.mark.parametrize("mode, count", MODES)
def test_daemon_demo_in_the_usual_real_order_loses_only_the_second_print(mode, count):
    # the order a real machine usually gives: the child prints and sleeps, the
    # main program's sleep ends first and it terminates the child
    schedule = ["main:sleep", "main/Process-1:sleep", "main"]
    results = [
        races.run(nothing, {"main": notes.daemon_main}, schedule=schedule, **mode) for _ in range(count)
    ]
    assert len({tuple(r.steps()) for r in results}) == 1
    result = results[0]
    assert not result.failed, result.report()
    (warning,) = result.warnings
    assert "terminated (terminated by main) at sleep" in warning
    assert "print('睡了一会。。')" in warning and "print('老了。。。。')" not in warning


def test_a_schedule_naming_a_child_before_it_exists_is_infeasible():
    result = races.run(nothing, {"main": notes.daemon_main}, schedule=["main/Process-1"])
    assert result.failure.kind == "schedule"
    assert "task 'main/Process-1' is not started yet" in result.failure.message


@pytest.mark.parametrize(
    "program, setup",
    [
        (notes.daemon_main, nothing),
        (notes.lock_main, nothing),
        (notes.ticket_main, notes.ticket_setup),
        (notes.producer_consumer_main, nothing),
        (notes.join_main, nothing),
    ],
    ids=["daemon", "lock", "ticket", "producer_consumer", "join"],
)
def test_programs_hold_under_100_random_interleavings(program, setup):
    result = races.explore(setup, {"main": program}, strategy="random", max_schedules=THREAD_RUNS)
    assert not result.failed, result.report()
    assert result.schedules == THREAD_RUNS


def test_daemon_thread_taking_the_controllers_turn_can_be_terminated():
    from tests.test_dynamic_tasks import starts_daemon_and_ends, starts_daemon_thread

    for program in (starts_daemon_and_ends, starts_daemon_thread):
        result = races.explore(nothing, {"main": program}, strategy="random", max_schedules=50)
        assert not result.failed, result.report()
