"""The warm Manager's class: a ``SyncManager`` whose shared data objects
(dict, list, Namespace, Value, Array) take one round trip to create instead
of three.

``SyncManager().dict()`` asks the server to create the object (which holds
one reference for the creation), makes the proxy, which *increfs* it, then
*decrefs* the creation's reference: three requests, each on a fresh
authenticated connection (the server closes such a connection after one
request), ~0.25 ms each here, more than a small run's tasks.  Here the proxy
adopts the creation's reference instead: the server's count ends the same
(one reference, the proxy's, dropped by the proxy's finalizer as usual), in
one request.  Everything else is ``SyncManager``'s: the same server, the
same proxy types, and a proxy sent to another process increfs there as
always.  ``incref``/``_decref`` are the same on Python 3.10 to 3.13.
"""
from __future__ import annotations

from multiprocessing import util
from multiprocessing.managers import BaseProxy, SyncManager
from typing import Any, Callable


class WarmManager(SyncManager):
    """A SyncManager whose data objects' proxies adopt the creation's reference."""


def _adopting_creator(typeid: str) -> Callable[..., Any]:
    def create(self: SyncManager, /, *args: Any, **kwds: Any) -> Any:
        token, exposed = self._create(typeid, *args, **kwds)  # type: ignore[attr-defined]
        proxytype = self._registry[typeid][-1]  # type: ignore[attr-defined]
        proxy = proxytype(token, self._serializer, manager=self,  # type: ignore[attr-defined]
                          authkey=self._authkey, exposed=exposed, incref=False)  # type: ignore[attr-defined]
        adopt(proxy)
        return proxy

    create.__name__ = create.__qualname__ = typeid
    create.__doc__ = f"Like SyncManager.{typeid}(), in one request to the server."
    return create


def adopt(proxy: Any) -> None:
    """Make ``proxy`` (made with ``incref=False``) the owner of the reference
    its object was created with: what ``BaseProxy._incref`` records, without
    the request."""
    proxy._idset.add(proxy._id)
    state = proxy._manager and proxy._manager._state
    proxy._close = util.Finalize(
        proxy, BaseProxy._decref,  # type: ignore[attr-defined]
        args=(proxy._token, proxy._authkey, state, proxy._tls, proxy._idset, proxy._Client),
        exitpriority=10,
    )


# the data objects, which stay real Manager objects in patch mode; the
# synchronising factories (Lock, Queue, ...) are left to SyncManager's own
# methods, which patch mode replaces (races._core.manager_sync)
DATA_TYPEIDS = ("dict", "list", "Namespace", "Value", "Array")

for _typeid in DATA_TYPEIDS:
    setattr(WarmManager, _typeid, _adopting_creator(_typeid))
