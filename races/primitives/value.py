"""``races.Value`` and ``races.Array``: shared ctypes data that lives in the model.

Every read and write (``.value``, ``a[i]``, ``a[i] = x``, slices) is a step of
kind ``value`` so a race detector can see it; the model holds a real ctypes
object and performs the operation on it, so conversions and errors are
CPython's own.  With ``lock=True`` (the default) ``get_lock()`` returns a
:class:`races.RLock`; with ``lock=False`` there is none, as for
``multiprocessing.RawValue``.

Writes made before the run (in ``setup``, outside the harness) go to a local
ctypes object; the model starts from its contents.  Outside the harness the
objects read and write that local ctypes object.
"""
from __future__ import annotations

import ctypes
import weakref
from multiprocessing.sharedctypes import typecode_to_type  # type: ignore[attr-defined]
from typing import Any

from .._core.agent import current
from .._core.ids import new_id
from .._core.model import Model, register
from .._core.step import Step
from .rlock import RLock

_made: dict[str, weakref.ref] = {}


def _ctype(typecode_or_type: Any) -> Any:
    return typecode_to_type.get(typecode_or_type, typecode_or_type)


def _build(spec: tuple) -> Any:
    """A fresh ctypes object from ``("value", type, args)`` or ``("array", type, size_or_init)``."""
    kind, typecode, init = spec
    ctype = _ctype(typecode)
    if kind == "value":
        obj = ctype()
        if init:
            obj.__init__(*init)
        return obj
    if isinstance(init, int):
        return (ctype * init)()
    obj = (ctype * len(init))()
    obj.__init__(*init)
    return obj


class _Shared:
    """What Value and Array share: the id, the optional lock, the local object."""

    _kind = "Value"

    def _setup(self, spec: tuple, lock: Any, name: str | None) -> None:
        self._id = new_id(self._kind)
        self._label = name or self._id.rsplit("/", 1)[-1]
        self._spec = spec
        self._local: Any = _build(spec)  # checks the arguments as multiprocessing does
        if lock is True:
            lock = RLock(f"{self._label}.lock")
        self._lock = lock or None
        if current() is None:  # made by setup(): the model may start from it
            _made[self._id] = weakref.ref(self)

    def _fallback(self) -> Any:
        if self._local is None:
            self._local = _build(self._spec)
        return self._local

    def _step(self, name: str, *args: Any) -> Any:
        agent = current()
        assert agent is not None
        return agent.step("value", name, self._id, self._label, (self._spec, *args), None, depth=3)

    def _the_lock(self) -> Any:
        if self._lock is None:
            raise AttributeError(f"{type(self).__name__} made with lock=False has no lock")
        return self._lock

    @property
    def get_lock(self) -> Any:
        """``get_lock()``: the RLock (absent, like on a raw value, with ``lock=False``)."""
        lock = self._the_lock()
        return lambda: lock

    @property
    def acquire(self) -> Any:
        return self._the_lock().acquire

    @property
    def release(self) -> Any:
        return self._the_lock().release

    def __enter__(self) -> bool:
        return self._the_lock().__enter__()

    def __exit__(self, *exc: object) -> None:
        self._the_lock().release()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_local"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


class Value(_Shared):
    """``multiprocessing.Value(typecode_or_type, *args, lock=True)``, controlled."""

    _kind = "Value"

    def __init__(self, typecode_or_type: Any, *args: Any, lock: Any = True, name: str | None = None) -> None:
        self._setup(("value", typecode_or_type, args), lock, name)

    @property
    def value(self) -> Any:
        if current() is None:
            return self._fallback().value
        return self._step("get")

    @value.setter
    def value(self, new: Any) -> None:
        if current() is None:
            self._fallback().value = new
            return
        self._step("set", new)

    def __repr__(self) -> str:
        return f"<races.Value {self._label} {self._spec[1]!r}>"


class Array(_Shared):
    """``multiprocessing.Array(typecode_or_type, size_or_initializer, lock=True)``, controlled."""

    _kind = "Array"

    def __init__(
        self, typecode_or_type: Any, size_or_initializer: Any, *, lock: Any = True, name: str | None = None
    ) -> None:
        init = size_or_initializer
        if not isinstance(init, int):
            init = list(init)
        self._setup(("array", typecode_or_type, init), lock, name)
        self._length = len(self._local)

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: Any) -> Any:
        if current() is None:
            return self._fallback()[index]
        return self._step("getitem", index)

    def __setitem__(self, index: Any, new: Any) -> None:
        if current() is None:
            self._fallback()[index] = new
            return
        self._step("setitem", index, new)

    def __iter__(self) -> Any:
        return iter(self[:])

    @property
    def value(self) -> Any:
        """A char array's value (``typecode 'c'``), as ctypes gives it."""
        if current() is None:
            return self._fallback().value
        return self._step("getattr", "value")

    @value.setter
    def value(self, new: Any) -> None:
        if current() is None:
            self._fallback().value = new
            return
        self._step("setattr", "value", new)

    @property
    def raw(self) -> Any:
        if current() is None:
            return self._fallback().raw
        return self._step("getattr", "raw")

    @raw.setter
    def raw(self, new: Any) -> None:
        if current() is None:
            self._fallback().raw = new
            return
        self._step("setattr", "raw", new)

    def __repr__(self) -> str:
        return f"<races.Array {self._label} {self._spec[1]!r} x {self._length}>"


@register("value")
class ValueModel(Model):
    """The ctypes object itself; reads and writes are performed on it."""

    def __init__(self, obj: str, label: str, run: Any) -> None:
        super().__init__(obj, label, run)
        self.data: Any = None
        self.last_write: str = ""

    def _local(self, spec: tuple) -> Any:
        """The local ctypes object of the task-side object made in this process, if any."""
        ref = _made.get(self.obj)
        made = ref() if ref is not None else None
        if made is None or made._spec != spec:
            return None
        return made._fallback()

    def _configure(self, step: Step) -> None:
        if self.data is not None:
            return
        self.data = _build(step.args[0])
        local = self._local(step.args[0])
        if local is not None:  # start from what setup() wrote outside the harness
            ctypes.memmove(ctypes.addressof(self.data), ctypes.addressof(local), ctypes.sizeof(self.data))

    def _write_back(self, step: Step) -> None:
        """Mirror a write into the object setup() made, so that the invariant
        (which runs outside the harness) reads the final contents."""
        local = self._local(step.args[0])
        if local is not None:
            ctypes.memmove(ctypes.addressof(local), ctypes.addressof(self.data), ctypes.sizeof(self.data))

    def apply(self, task: str, step: Step) -> tuple:
        self._configure(step)
        args = step.args[1:]
        try:
            if step.name == "get":
                return ("ok", self.data.value)
            if step.name == "set":
                self.data.value = args[0]
            elif step.name == "getitem":
                return ("ok", self.data[args[0]])
            elif step.name == "setitem":
                self.data[args[0]] = args[1]
            elif step.name == "getattr":
                return ("ok", getattr(self.data, args[0]))
            elif step.name == "setattr":
                setattr(self.data, args[0], args[1])
        except Exception as exc:  # noqa: BLE001 - ctypes' own error goes back to the task
            return ("raise", exc)
        self.last_write = f"{task} at {step.location}"
        self._write_back(step)
        return ("ok", None)
