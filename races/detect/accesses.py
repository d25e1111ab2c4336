"""Which steps are accesses to shared data, and to which location.

``classify(step)`` returns ``None`` (not an access) or
``(kind, container, keys, display)``:

* ``kind``: ``"read"``, ``"write"`` or ``"atomic"`` (a write that readers
  cannot see half-done: ``os.replace``; it races only with plain writes);
* ``container``: the object the location belongs to (an id);
* ``keys``: ``None`` for the whole object, else a tuple of keys (a dict key's
  repr, an attribute, an array index); a whole-object access conflicts with
  every key, a keyed one with the same key and with whole-object accesses;
* ``display``: the location as reports print it (``dict['num']``, ``ticket.json``).

Accesses come from Manager proxy calls (kind ``manager``), ``races.Value`` /
``races.Array`` (kind ``value``), ``races.shared`` objects (kind ``shared``),
files under a watched directory (kind ``file``) and, with
``granularity="line"``, the plain attribute and global accesses of a traced
line (kind ``point``, several per step: see :func:`classify_all`).
"""
from __future__ import annotations

from typing import Any, List, Optional, Tuple


MANAGER_READS = frozenset({
    "__getitem__", "get", "keys", "items", "values", "copy", "__len__", "__contains__",
    "__str__", "__repr__", "_getvalue", "__getattribute__", "index", "count", "__iter__",
    "__reversed__", "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__add__",
    "__mul__", "__rmul__",
})
MANAGER_WRITES = frozenset({
    "__setitem__", "__delitem__", "update", "pop", "popitem", "setdefault", "clear", "append",
    "extend", "insert", "remove", "sort", "reverse", "__iadd__", "__imul__", "__setattr__",
    "__delattr__", "set",
})
# methods that touch one key of a dict (the key's repr is in step.args)
_DICT_KEYED = frozenset({"__getitem__", "__setitem__", "__delitem__", "get", "pop", "setdefault", "__contains__"})
_NS_KEYED = frozenset({"__getattribute__", "__setattr__", "__delattr__"})

Access = Tuple[str, str, Optional[tuple], str]


def _manager(step: Any) -> Optional[Access]:
    name = step.name
    key = step.args[0] if step.args and isinstance(step.args[0], str) else None
    if name in MANAGER_READS:
        kind = "read"
    elif name in MANAGER_WRITES:
        kind = "write"
    else:
        return None
    typeid = step.label or "proxy"
    low = typeid.lower()
    if "namespace" in low:
        if name in _NS_KEYED and key is not None:
            attr = _unrepr(key)
            return kind, step.obj, (attr,), f"{typeid}.{attr}"
        if name == "__getattribute__":
            return None  # an attribute we cannot name: nothing to compare
        return kind, step.obj, None, typeid
    if "dict" in low and name in _DICT_KEYED and key is not None:
        return kind, step.obj, (key,), f"{typeid}[{key}]"
    if typeid == "Value" and name in ("get", "set"):
        return kind, step.obj, None, f"{typeid}.value"
    return kind, step.obj, None, typeid


def _unrepr(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _array_length(spec: tuple) -> int:
    init = spec[2]
    return init if isinstance(init, int) else len(init)


def _value(step: Any) -> Optional[Access]:
    name = step.name
    spec = step.args[0]
    label = step.label or step.obj
    kind = "read" if name in ("get", "getitem", "getattr") else "write"
    if spec[0] == "value":
        return kind, step.obj, None, f"{label}.value"
    if name in ("getitem", "setitem"):
        index = step.args[1]
        n = _array_length(spec)
        if isinstance(index, slice):
            keys = tuple(range(*index.indices(n)))
            return kind, step.obj, keys, f"{label}[{index.start}:{index.stop}]"
        if isinstance(index, int):
            if index < 0:
                index += n
            return kind, step.obj, (index,), f"{label}[{index}]"
    return kind, step.obj, None, label


def _shared(step: Any) -> Optional[Access]:
    key = step.args[0] if step.args else None
    label = step.label or step.obj
    kind = step.name if step.name in ("read", "write") else "write"
    if key is None:
        return kind, step.obj, None, label
    return kind, step.obj, (key,), f"{label}{key}"


def _file(step: Any) -> Optional[Access]:
    kind = {"read": "read", "write": "write", "truncate": "write", "replace": "atomic"}.get(step.name)
    if kind is None:
        return None
    return kind, step.obj, None, step.label or step.obj


_BY_KIND = {"manager": _manager, "value": _value, "shared": _shared, "file": _file}


def classify(step: Any) -> Optional[Access]:
    fn = _BY_KIND.get(step.kind)
    return fn(step) if fn is not None else None


def line_accesses(step: Any) -> tuple:
    """The plain accesses a line-granularity point carries (see
    :mod:`races._core.line_trace`): a tuple of ``LineAccess``, or ``()``."""
    if step.kind == "point" and step.args and isinstance(step.args[0], tuple):
        return step.args[0]
    return ()


# (kind, container, keys, display, where, op, stack)
FullAccess = Tuple[str, str, Optional[tuple], str, str, str, tuple]


def classify_all(step: Any) -> List[FullAccess]:
    """Every access ``step`` makes, each with where it happens, what the task did
    and its short stack: none, one (:func:`classify`), or a traced line's several."""
    if step.kind == "point":
        return [(a.kind, a.container, (a.key,), a.display, a.where, a.op, a.stack) for a in line_accesses(step)]
    found = classify(step)
    if found is None:
        return []
    kind, container, keys, display = found
    return [(kind, container, keys, display, step.location, f"{step.label}.{step.name}", stack_of(step))]


def stack_of(step: Any) -> tuple:
    """The short user stack of an access: the one its step carries (``shared``,
    ``file`` and ``manager`` steps keep ``caller_stack``) or just its location."""
    if step.kind in ("shared", "file", "manager") and step.args and isinstance(step.args[-1], tuple):
        return step.args[-1] or ((step.location, ""),)
    return ((step.location, ""),)
