"""The warm template behind spawn and forkserver runs: its children are fresh
spawn-like processes, its stock of idle children is no leak, and a module it
has not imported yet is imported before any child that needs it is used."""
from __future__ import annotations

import os
import signal
import sys
import uuid

import pytest

import races
from races._core import template
from tests import sample_tasks as st
from tests.leaks import task_processes

METHODS = ["forkserver", "spawn"]


def report_signals_and_patching(state):
    races.point("look")
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        raise AssertionError(f"SIGINT handler {signal.getsignal(signal.SIGINT)!r}, not Python's default")
    if signal.getsignal(signal.SIGCHLD) != signal.SIG_DFL:
        raise AssertionError(f"SIGCHLD handler {signal.getsignal(signal.SIGCHLD)!r}")
    from races._core import patch_mode

    if patch_mode.active() != state:
        raise AssertionError(f"patch mode active: {patch_mode.active()}, the run asked for {state}")


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("patch", [True, False])
def test_a_task_starts_like_a_spawned_child(method, patch):
    for _ in range(2):  # the second run takes children forked while the first went on
        result = races.run(lambda: patch, [report_signals_and_patching], backend="process",
                           start_method=method, patch=patch)
        assert result.failure is None, result.report()
    assert task_processes() == []


MODULE = '''
import races

COUNT = [0]


def bump(path):
    COUNT[0] += 1  # a fresh import in every task process: always 1
    races.point("bumped")
    with open(path, "a") as f:
        f.write(f"{COUNT[0]}\\n")
'''


@pytest.mark.parametrize("method", METHODS)
def test_a_module_the_template_lacks_is_imported_fresh(method, tmp_path, monkeypatch):
    out = tmp_path / "out.txt"
    # a run whose module the template has: its stock is then forked without the new one
    assert races.run(st.none_setup, [st.raises_value_error], backend="process", start_method=method).failed
    name = f"races_fresh_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = __import__(name)
    try:
        for _ in range(3):
            result = races.run(lambda: str(out), [module.bump, module.bump], backend="process",
                               start_method=method)
            assert result.failure is None, result.report()
        assert out.read_text().split() == ["1"] * 6
    finally:
        sys.modules.pop(name, None)
    assert task_processes() == []


@pytest.mark.parametrize("method", METHODS)
def test_idle_children_are_services(method):
    import psutil

    assert races.run(st.none_setup, [st.raises_value_error] * 3, backend="process", start_method=method).failed
    services = set(template.service_pids())
    idle = []
    for (m, owner), t in template._templates.items():
        if m == method and owner == os.getpid():
            for child in psutil.Process(t.process.pid).children():
                try:
                    if child.status() != psutil.STATUS_ZOMBIE:
                        idle.append(child.pid)
                except psutil.Error:
                    pass
    assert idle, "no idle child was forked ahead of the next run"
    assert set(idle) <= services
    assert task_processes() == []


def stuck_here_first(state):
    races.point("before")
    st.block_in_uncontrolled_code()


def stuck_here_second(state):
    races.point("before")
    st.block_in_uncontrolled_code()


@pytest.mark.parametrize("method", METHODS)
def test_each_timeout_shows_its_own_stack(method):
    # the template's children share one dump file: each report holds its task's stack only
    first = races.run(st.none_setup, {"a": stuck_here_first}, backend="process", start_method=method, timeout=0.5)
    second = races.run(st.none_setup, {"b": stuck_here_second}, backend="process", start_method=method, timeout=0.5)
    assert first.failure.kind == second.failure.kind == "timeout"
    assert "stuck_here_first" in first.failure.traceback
    assert "stuck_here_second" in second.failure.traceback
    assert "stuck_here_first" not in second.failure.traceback
    assert task_processes() == []


def test_a_failed_fork_is_a_task_error_and_leaves_no_process(monkeypatch):
    # under fork the launcher forks a run's tasks one right after the other
    real_fork = os.fork
    calls = []

    def fork():
        calls.append(1)
        if len(calls) == 2:
            raise BlockingIOError(11, "Resource temporarily unavailable")
        return real_fork()

    monkeypatch.setattr(os, "fork", fork)
    with pytest.raises(races.TaskError, match=r"task 't1' cannot be started with the 'fork' start method"):
        races.run(st.none_setup, [st.raises_value_error] * 3, backend="process", start_method="fork")
    monkeypatch.undo()
    assert task_processes() == []


def noop(state):
    return None


def test_a_process_forked_later_does_not_keep_the_template_waiting():
    """A Manager server started with fork after a template exists (here the
    warm one of races.manager()) inherits this process's descriptors; it must
    not hold the template's socket, or the template would never see its end
    and stopping it would wait, then kill."""
    from types import SimpleNamespace

    from races._core import shared_manager

    shared_manager.shutdown()  # the fork Manager below is started after the template
    assert not races.run(lambda: None, [noop], backend="process", start_method="forkserver").failed
    templates = list(template._templates.values())
    assert templates
    result = races.run(lambda: SimpleNamespace(data=races.manager().dict()), [noop], backend="process",
                       start_method="fork")
    assert not result.failed
    template.shutdown()
    assert [t.process.exitcode for t in templates] == [0] * len(templates)  # ended on EOF, not killed
    shared_manager.shutdown()
