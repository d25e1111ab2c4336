"""Task threads come from a pool of parked workers (Python < 3.13): a task
still sees a fresh thread (its thread-locals are gone), but a worker keeps its
proxies' connection to the warm Manager (races.manager()) from task to task."""
from __future__ import annotations

import multiprocessing
import sys
import threading
from types import SimpleNamespace

import pytest

import races
from races._core import thread_transport

pooled = pytest.mark.skipif(not thread_transport._POOL, reason="no worker pool on Python 3.13+")

LOCAL = threading.local()


def remember_local(state):
    state.seen.append(getattr(LOCAL, "value", None))
    LOCAL.value = "set by an earlier task"


def test_a_task_never_sees_an_earlier_task_s_thread_locals():
    seen = []
    for _ in range(3):
        result = races.run(lambda: SimpleNamespace(seen=seen), [remember_local])
        assert not result.failed
    assert seen == [None, None, None]


def warm_dict():
    return SimpleNamespace(data=races.manager().dict({"n": 0}), connections=[])


def use_the_dict(state):
    state.data["n"] += 1
    state.connections.append(state.data._tls.connection)


def warm_connections(runs):
    """The connection each of ``runs`` runs' task used for a warm-Manager dict."""
    connections = []
    for _ in range(runs):
        state = warm_dict()
        state.connections = connections
        assert not races.run(lambda state=state: state, [use_the_dict]).failed
    return connections


@pooled
def test_a_worker_keeps_its_connection_to_the_warm_manager():
    connections = warm_connections(3)
    assert connections[0] is connections[1] is connections[2]
    assert not connections[0].closed


@pooled
def test_a_connection_to_another_manager_is_not_kept():
    """Only the warm servers live as long as the process: a connection to any
    other Manager goes with the worker's thread-locals, as at a thread's exit."""
    manager = multiprocessing.get_context("forkserver").Manager()
    try:
        data = manager.dict({"n": 0})
        states = [SimpleNamespace(data=data, connections=[]) for _ in range(2)]
        for state in states:
            assert not races.run(lambda state=state: state, [use_the_dict]).failed
        assert states[0].connections[0] is not states[1].connections[0]
        assert data["n"] == 2
    finally:
        manager.shutdown()


@pytest.mark.skipif(sys.version_info < (3, 13), reason="3.13+: one fresh thread per task")
def test_without_the_pool_every_task_connects_anew():
    connections = warm_connections(2)
    assert connections[0] is not connections[1]
