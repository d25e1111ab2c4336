"""``races.shared(obj)``: make a plain object's reads and writes visible.

Inside a controlled task (thread backend) every attribute read or write and
every item read or write through the wrapper is a step of kind ``shared``
(name ``read`` or ``write``, args ``(".attr" or "[key]", stack)``), so the
trace shows it and ``detect_races`` checks it.  Methods of builtin containers
called through the wrapper (``lst.append(x)``, ``d.get(k)``) count as a read
or a write of the whole container (of one key for ``dict.get/pop/setdefault``).
Outside the harness the wrapper just forwards.
"""
from __future__ import annotations

import collections
from typing import Any, Optional

from ._core.agent import current
from ._core.ids import new_id
from ._core.model import Model, register
from ._core.step import caller_stack

_CONTAINER_WRITES = frozenset({
    "append", "extend", "insert", "remove", "pop", "popitem", "clear", "update", "setdefault",
    "sort", "reverse", "add", "discard", "appendleft", "popleft", "extendleft", "rotate",
    "difference_update", "intersection_update", "symmetric_difference_update",
})
_CONTAINERS = (list, dict, set, collections.deque, bytearray)
_KEYED = frozenset({"get", "pop", "setdefault"})


@register("shared")
class SharedModel(Model):
    """An access to a ``races.shared`` object: always enabled."""


def _record(wrapper: "Shared", name: str, key: Optional[str]) -> None:
    agent = current()
    if agent is None or agent.busy:
        return
    ident = object.__getattribute__(wrapper, "_races_id")
    label = object.__getattribute__(wrapper, "_races_label")
    agent.step("shared", name, obj=ident, label=label, args=(key, caller_stack(2)), depth=3)


class Shared:
    """The wrapper ``races.shared`` returns."""

    __slots__ = ("_races_obj", "_races_id", "_races_label")

    def __init__(self, obj: Any, name: Optional[str] = None) -> None:
        ident = new_id("Shared")
        object.__setattr__(self, "_races_obj", obj)
        object.__setattr__(self, "_races_id", ident)
        object.__setattr__(self, "_races_label", name or ident.rsplit("/", 1)[-1])

    def __getattr__(self, attr: str) -> Any:
        obj = object.__getattribute__(self, "_races_obj")
        if isinstance(obj, _CONTAINERS) and callable(getattr(type(obj), attr, None)):
            method = getattr(obj, attr)
            kind = "write" if attr in _CONTAINER_WRITES else "read"
            keyed = attr in _KEYED and isinstance(obj, dict)

            def call(*args: Any, **kwargs: Any) -> Any:
                key = f"[{args[0]!r}]" if keyed and args else None
                _record(self, kind, key)
                return method(*args, **kwargs)

            return call
        _record(self, "read", f".{attr}")
        return getattr(obj, attr)

    def __setattr__(self, attr: str, value: Any) -> None:
        _record(self, "write", f".{attr}")
        setattr(object.__getattribute__(self, "_races_obj"), attr, value)

    def __delattr__(self, attr: str) -> None:
        _record(self, "write", f".{attr}")
        delattr(object.__getattribute__(self, "_races_obj"), attr)

    def _item_key(self, key: Any) -> Optional[str]:
        obj = object.__getattribute__(self, "_races_obj")
        if isinstance(obj, (list, collections.deque, bytearray)) and not isinstance(key, int):
            return None  # a slice: the whole sequence
        return f"[{key!r}]"

    def __getitem__(self, key: Any) -> Any:
        _record(self, "read", self._item_key(key))
        return object.__getattribute__(self, "_races_obj")[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        _record(self, "write", self._item_key(key))
        object.__getattribute__(self, "_races_obj")[key] = value

    def __delitem__(self, key: Any) -> None:
        # deleting from a sequence shifts every later index: a write of the whole
        obj = object.__getattribute__(self, "_races_obj")
        _record(self, "write", f"[{key!r}]" if isinstance(obj, dict) else None)
        del obj[key]

    def __contains__(self, key: Any) -> bool:
        obj = object.__getattribute__(self, "_races_obj")
        _record(self, "read", f"[{key!r}]" if isinstance(obj, dict) else None)
        return key in obj

    def __len__(self) -> int:
        _record(self, "read", None)
        return len(object.__getattribute__(self, "_races_obj"))

    def __iter__(self) -> Any:
        _record(self, "read", None)
        return iter(list(object.__getattribute__(self, "_races_obj")))

    def __repr__(self) -> str:
        return f"races.shared({object.__getattribute__(self, '_races_obj')!r})"

    def __reduce__(self) -> Any:
        return (_rebuild, (object.__getattribute__(self, "_races_obj"),
                           object.__getattribute__(self, "_races_id"),
                           object.__getattribute__(self, "_races_label")))


def _rebuild(obj: Any, ident: str, label: str) -> Shared:
    wrapper = Shared.__new__(Shared)
    object.__setattr__(wrapper, "_races_obj", obj)
    object.__setattr__(wrapper, "_races_id", ident)
    object.__setattr__(wrapper, "_races_label", label)
    return wrapper


def shared(obj: Any, name: Optional[str] = None) -> Any:
    """Wrap ``obj`` so that reads and writes through the wrapper are steps the
    race detector sees (thread backend).  ``name`` labels it in reports."""
    return Shared(obj, name)


def unwrap(wrapper: Any) -> Any:
    """The object inside a ``races.shared`` wrapper (the invariant may read it)."""
    if isinstance(wrapper, Shared):
        return object.__getattribute__(wrapper, "_races_obj")
    return wrapper
