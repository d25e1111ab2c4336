"""races.manager(): a warm SyncManager whose shared objects are created in
one request, with the server's reference counts exactly as SyncManager's."""
from __future__ import annotations

import gc
from multiprocessing.managers import SyncManager, dispatch
from types import SimpleNamespace

import pytest

import races
from races._core import warm_manager


def references(manager, ident):
    """The server's count of references to object ``ident`` (0: it is gone).
    Other tests share the warm server, so only this object is looked at."""
    gc.collect()  # proxies in reference cycles finalize now
    for line in manager._debug_info().splitlines():
        if line.strip().startswith(ident + ":"):
            return int(line.split("refcount=")[1].split()[0])
    return 0


@pytest.mark.parametrize("typeid,args", [("dict", ({"num": 3},)), ("list", ([1, 2],)), ("Namespace", ()),
                                         ("Value", ("i", 7)), ("Array", ("i", [1, 2])), ("Lock", ())])
def test_a_created_object_lives_as_long_as_its_proxy(typeid, args):
    manager = races.manager()
    proxy = getattr(manager, typeid)(*args)
    ident = proxy._id
    assert references(manager, ident) == 1  # the proxy's, and no other
    assert ident in proxy._idset
    del proxy
    assert references(manager, ident) == 0  # the proxy's finalizer gave it back: the object is gone


def test_the_proxies_behave_as_syncmanager_s():
    manager = races.manager()
    assert isinstance(manager, SyncManager)
    data = manager.dict({"num": 10})
    data["num"] -= 1
    assert dict(data) == {"num": 9}
    items = manager.list([1])
    items.append(2)
    assert list(items) == [1, 2]
    assert type(data).__name__ == "DictProxy" and data._token.typeid == "dict"


def test_the_data_types_are_created_in_one_request_and_the_rest_by_syncmanager():
    for typeid in warm_manager.DATA_TYPEIDS:
        assert typeid in vars(warm_manager.WarmManager) and typeid in SyncManager._registry
    # the synchronising factories stay SyncManager's, which patch mode replaces
    assert "Lock" not in vars(warm_manager.WarmManager) and "Queue" not in vars(warm_manager.WarmManager)


def test_a_lock_from_the_warm_manager_is_controlled():
    result = races.run(lambda: races.manager().Lock(), [grab_twice])
    assert result.failure.kind == "deadlock"


def grab_twice(lock):
    lock.acquire()
    lock.acquire()


def decrement(state):
    state.data["num"] -= 1


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_a_proxy_sent_to_task_processes_keeps_the_counts_right(method):
    """Each task process increfs the dict as it unpickles (or inherits) the
    proxy and gives the reference back as it exits, as a spawned child's
    finalizers do: after the run only the test's reference is left."""
    manager = races.manager()
    made = [SimpleNamespace(data=manager.dict({"num": 2}))]  # made before the run: setup() only returns it
    ident = made[0].data._id
    result = races.run(lambda: made[0], [decrement, decrement], backend="process", start_method=method)
    assert not result.failed
    assert made[0].data["num"] == 0
    assert references(manager, ident) == 1  # the task processes' references were all given back
    made.clear()
    assert references(manager, ident) == 0


def note_references(state):
    """The server's count of references to the task's dict, as the task sees it."""
    proxy = state.data
    conn = proxy._Client(proxy._token.address, authkey=proxy._authkey)
    try:
        info = dispatch(conn, None, "debug_info")
    finally:
        conn.close()
    line = next(line for line in info.splitlines() if line.strip().startswith(proxy._id))
    state.seen.append(int(line.split("refcount=")[1].split()[0]))


@pytest.mark.parametrize("method,expected", [("fork", 1), ("forkserver", 2)])
def test_a_forked_task_uses_the_controller_s_reference(method, expected):
    """A fork task inherits its proxies and the controller holds their objects
    for the whole run: it takes no reference of its own (one request fewer at
    start and at exit).  A task that unpickles its proxies takes its own."""
    manager = races.manager()

    def setup():
        return SimpleNamespace(data=races.manager().dict(), seen=manager.list())

    seen = []
    result = races.run(lambda: seen.append(setup()) or seen[-1], [note_references], backend="process",
                       start_method=method)
    assert not result.failed, result.report()
    assert list(seen[0].seen) == [expected]
