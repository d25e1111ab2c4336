"""``races.Queue``, ``races.JoinableQueue`` and ``races.SimpleQueue``: FIFO
queues whose items live in the controller's model.

``put`` sends the item in the step's ``args`` and ``get``'s reply carries it
back, so data crosses from one task process to another through the
controller; a blocked ``put``/``get`` is a disabled step, and a timed one
raises ``queue.Full``/``queue.Empty`` when virtual time runs out.  The object
itself is only an id and pickles freely.

Items put before the run (in ``setup``, outside the harness) land in the
fallback ``queue.Queue``; the model starts from them when the run first
touches the queue, and mirrors its items back into it after every change so
the invariant sees what the tasks left.  Outside the harness the classes are ``queue.Queue`` /
``queue.SimpleQueue`` (``close``, ``join_thread`` and ``cancel_join_thread``
are no-ops there).

The stale view.  A ``multiprocessing.Queue``'s ``put`` hands the item to a
feeder thread, which writes it to the pipe later; ``empty()`` and
``get_nowait()`` look at the pipe, so right after a put (even in the same
process) they may say "empty" while ``qsize()`` already counts the item.
The model keeps, per item, whether its feeder may still hold it: it is
*in flight* until its putter calls ``join_thread()`` or ends (a ``get``
takes it out of the queue for good); items ``setup()`` put were put by the
program itself, which outlives the run, so they stay in flight.  While every
item in the queue is in flight, ``empty()`` and a non-blocking ``get`` have
two answers, the current state and the stale one (``True`` / ``queue.Empty``),
and the controller lets the strategy choose (``choose_value``): a forced run
answers from the current state, exploration tries both.  ``qsize()`` and
``full()`` count with the queue's semaphore, taken in ``put`` and released
in ``get``, as CPython does: they are exact at the moment they are asked;
their unreliability is that the answer is old by the time the caller acts,
which the schedule explores.  A ``queue.Queue`` (threading, or a Manager's,
``_feeder = False``) and a ``SimpleQueue`` (written to the pipe in ``put``)
have no stale view.
"""
from __future__ import annotations

import collections
import queue as _queue
import weakref
from typing import Any

from .._core.agent import current
from .._core.ids import new_id
from .._core.model import OK, Model, register
from .._core.step import Step

Full = _queue.Full
Empty = _queue.Empty
_RealQueue = _queue.Queue
_RealSimpleQueue = _queue.SimpleQueue

_BEFORE = "(before the run)"  # the putter of items setup() put: the program, which lives on

# id -> the task-side object made in this process, so that the model (in the
# controller's process) can start from what setup() put outside the harness.
_made: dict[str, weakref.ref] = {}


def _bound(block: bool, timeout: float | None) -> float | None:
    if not block:
        return 0.0
    if timeout is None:
        return None
    if timeout < 0:
        raise ValueError("'timeout' must be a non-negative number")
    return float(timeout)


class _Kept:
    """What the model holds for an item of a process-private queue: the item
    itself stays in its process (identity kept, no pickling), see ``_private``."""

    __slots__ = ("serial", "text")

    def __init__(self, serial: int, text: str) -> None:
        self.serial = serial
        self.text = text

    def __getstate__(self) -> tuple:
        return (self.serial, self.text)

    def __setstate__(self, state: tuple) -> None:
        self.serial, self.text = state

    def __repr__(self) -> str:
        return self.text


_kept: dict[int, Any] = {}
_serials = [0]


def _keep(obj: Any) -> _Kept:
    _serials[0] += 1
    _kept[_serials[0]] = obj
    text = repr(obj)
    return _Kept(_serials[0], text if len(text) <= 80 else text[:77] + "...")


def _take(item: Any) -> Any:
    return _kept.pop(item.serial) if type(item) is _Kept else item


def _private_state(queue: Any) -> dict[str, Any]:
    if queue._private:
        raise TypeError(
            f"cannot pickle {queue!r}: a queue.Queue made in a task process belongs to that "
            "process's threads (use a multiprocessing queue between processes)"
        )
    state = dict(queue.__dict__)
    state["_local"] = None
    return state


def _drain(local: Any) -> list:
    items = []
    while True:
        try:
            items.append(local.get_nowait())
        except Empty:
            return items


class Queue:
    """A FIFO queue (``maxsize <= 0``: unbounded), controlled inside the harness."""

    _kind = "Queue"
    _step_kind = "queue"
    _feeder = True  # multiprocessing's feeder thread: empty() may be stale (module doc)
    # a queue.Queue made in a task process: its items stay in that process,
    # the model holds stand-ins (_Kept), as only that process's threads can use it
    _private = False

    def __init__(self, maxsize: int = 0, name: str | None = None, *, ctx: Any = None) -> None:
        self._id = new_id(self._kind)
        self._label = name or self._id.rsplit("/", 1)[-1]
        self._maxsize = max(0, maxsize)
        self._local: Any | None = None
        if current() is None:  # made by setup(): the model may start from it
            _made[self._id] = weakref.ref(self)

    def _fallback(self) -> Any:
        if self._local is None:
            self._local = _RealQueue(self._maxsize)
        return self._local

    def _step(self, name: str, args: tuple = (), timeout: float | None = None, depth: int = 3) -> Any:
        agent = current()
        assert agent is not None
        return agent.step(self._step_kind, name, self._id, self._label, (self._maxsize, *args), timeout, depth=depth)

    # -- put / get ------------------------------------------------------------
    def put(self, obj: Any, block: bool = True, timeout: float | None = None) -> None:
        if current() is None:
            self._fallback().put(obj, block, timeout)
            return
        self._put(obj, _bound(block, timeout))

    def put_nowait(self, obj: Any) -> None:
        if current() is None:
            self._fallback().put_nowait(obj)
            return
        self._put(obj, 0.0)

    def _put(self, obj: Any, bound: float | None) -> None:
        if not self._private:
            self._step("put", (obj,), bound, depth=4)
            return
        item = _keep(obj)
        try:
            self._step("put", (item,), bound, depth=4)
        except BaseException:
            _kept.pop(item.serial, None)
            raise

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        if current() is None:
            return self._fallback().get(block, timeout)
        return _take(self._step("get", (self._feeder,), _bound(block, timeout)))

    def get_nowait(self) -> Any:
        if current() is None:
            return self._fallback().get_nowait()
        return _take(self._step("get", (self._feeder,), 0.0))

    # -- views of the size (see QueueModel.observed) ---------------------------
    def qsize(self) -> int:
        if current() is None:
            return self._fallback().qsize()
        return self._step("qsize")

    def empty(self) -> bool:
        if current() is None:
            return self._fallback().empty()
        return self._step("empty", (self._feeder,))

    def full(self) -> bool:
        if current() is None:
            return self._fallback().full()
        return self._step("full")

    # -- queue.Queue / JoinableQueue accounting --------------------------------
    def task_done(self) -> None:
        if current() is None:
            self._fallback().task_done()
            return
        self._step("task_done")

    def join(self) -> None:
        if current() is None:
            self._fallback().join()
            return
        self._step("join")

    # -- multiprocessing.Queue lifecycle ---------------------------------------
    def close(self) -> None:
        if current() is not None:
            self._step("close")

    def join_thread(self) -> None:
        if current() is not None:
            self._step("join_thread")

    def cancel_join_thread(self) -> None:
        if current() is not None:
            self._step("cancel_join_thread")

    def __getstate__(self) -> dict[str, Any]:
        return _private_state(self)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __repr__(self) -> str:
        return f"<races.{type(self).__name__} {self._label}>"


class JoinableQueue(Queue):
    """``multiprocessing.JoinableQueue``: a Queue with ``task_done``/``join``."""

    _kind = "JoinableQueue"
    _step_kind = "joinable_queue"


class SimpleQueue:
    """An unbounded FIFO queue without task accounting, controlled inside the harness."""

    _kind = "SimpleQueue"
    _step_kind = "simple_queue"

    def __init__(self, name: str | None = None, *, ctx: Any = None) -> None:
        self._id = new_id(self._kind)
        self._label = name or self._id.rsplit("/", 1)[-1]
        self._local: Any | None = None
        if current() is None:  # made by setup(): the model may start from it
            _made[self._id] = weakref.ref(self)

    def _fallback(self) -> Any:
        if self._local is None:
            self._local = _RealSimpleQueue()
        return self._local

    _step = Queue._step  # type: ignore[assignment]  # shared: it reads only _id, _label, _step_kind
    _put = Queue._put  # type: ignore[assignment]
    _maxsize = 0
    _private = False  # see Queue._private

    def put(self, obj: Any, block: bool = True, timeout: float | None = None) -> None:
        if current() is None:
            self._fallback().put(obj, block, timeout)
            return
        self._put(obj, None)  # type: ignore[misc]

    def put_nowait(self, obj: Any) -> None:
        if current() is None:
            self._fallback().put(obj)
            return
        self._put(obj, None)  # type: ignore[misc]

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        if current() is None:
            return self._fallback().get(block, timeout)
        return _take(self._step("get", (), _bound(block, timeout)))  # type: ignore[misc]

    def get_nowait(self) -> Any:
        return self.get(False)

    def empty(self) -> bool:
        if current() is None:
            return self._fallback().empty()
        return self._step("empty")  # type: ignore[misc]

    def qsize(self) -> int:
        if current() is None:
            return self._fallback().qsize()
        return self._step("qsize")  # type: ignore[misc]

    def close(self) -> None:
        if current() is not None:
            self._step("close")  # type: ignore[misc]

    __getstate__ = Queue.__getstate__
    __setstate__ = Queue.__setstate__
    __repr__ = Queue.__repr__


@register("queue")
class QueueModel(Model):
    """The items (a deque), the bound, the count of unfinished tasks."""

    cls_name = "Queue"

    def __init__(self, obj: str, label: str, run: Any) -> None:
        super().__init__(obj, label, run)
        self.items: collections.deque = collections.deque()
        self.maxsize = 0
        self.unfinished = 0
        self.closed = False
        self.join_thread_cancelled = False
        self._configured = False
        # per item: (putter, its put number); _BEFORE for items put before the run
        self.origin: collections.deque = collections.deque()
        self.puts: dict[str, int] = {}  # task -> puts made
        self.flushed: dict[str, int] = {}  # task -> its puts up to this one are in the pipe

    def _local(self) -> Any:
        """The fallback queue of the task-side object made in this process, if any."""
        ref = _made.get(self.obj)
        made = ref() if ref is not None else None
        return made._fallback() if made is not None else None

    def _configure(self, step: Step) -> None:
        if self._configured:
            return
        self._configured = True
        self.maxsize = step.args[0]
        local = self._local()
        if local is None:
            return
        if isinstance(local, _RealQueue):  # items setup() put outside the harness
            with local.mutex:
                self.items.extend(local.queue)
                self.unfinished = local.unfinished_tasks
        else:
            self.items.extend(_drain(local))
            for item in self.items:
                local.put(item)
            self.unfinished = len(self.items)
        # put by the program before the run: its feeder may still hold them
        self.puts[_BEFORE] = len(self.items)
        self.origin.extend((_BEFORE, i + 1) for i in range(len(self.items)))

    def _write_back(self) -> None:
        """Mirror the items into the object setup() made, so that code outside
        the harness (the invariant) sees what the tasks left in the queue."""
        local = self._local()
        if local is None:
            return
        if isinstance(local, _RealQueue):
            with local.mutex:
                local.queue.clear()
                local.queue.extend(self.items)
                local.unfinished_tasks = self.unfinished
        else:
            _drain(local)
            for item in self.items:
                local.put(item)

    def full_now(self) -> bool:
        return 0 < self.maxsize <= len(self.items)

    # -- the stale view (module doc) ---------------------------------------------
    def _in_flight(self, origin: tuple[str, int]) -> bool:
        putter, number = origin
        return number > self.flushed.get(putter, 0)

    def _all_in_flight(self) -> bool:
        return bool(self.items) and all(self._in_flight(o) for o in self.origin)

    def _stale(self, step: Step, fresh: str, stale: str) -> bool:
        """Whether the answer to ``step`` is the stale one (the strategy's pick)."""
        feeder = len(step.args) > 1 and step.args[1] is True
        if not feeder or not self._all_in_flight():
            return False
        n = len(self.items)
        why = f"stale: the {n} item(s) put are still in the feeder thread's buffer, not in the pipe"
        return self.run.choose_value([fresh, f"{stale} ({why})"]) == 1

    def _flush(self, task: str) -> None:
        """Everything ``task`` put is in the pipe (``join_thread``, or it ended)."""
        if task in self.puts:
            self.flushed[task] = self.puts[task]

    def task_ended(self, task: str) -> None:
        self._flush(task)

    def enabled(self, task: str, step: Step) -> bool:
        self._configure(step)
        if step.name == "put":
            return not self.full_now()
        if step.name == "get":
            return bool(self.items)
        if step.name == "join":
            return self.unfinished == 0
        return True

    def apply(self, task: str, step: Step) -> tuple:
        self._configure(step)
        name = step.name
        if name == "put":
            self.items.append(step.args[1])
            self.puts[task] = self.puts.get(task, 0) + 1
            self.origin.append((task, self.puts[task]))
            self.unfinished += 1
            self._write_back()
            return OK
        if name == "get":
            if step.timeout == 0 and self._stale(step, "get_nowait() takes the first item", "raises queue.Empty"):
                return ("raise", Empty())
            item = self.items.popleft()
            self.origin.popleft()
            self._write_back()
            return ("ok", item)
        if name == "empty":
            fresh = not self.items
            return ("ok", fresh or self._stale(step, "empty() is False", "empty() is True"))
        if name in ("qsize", "full"):
            return ("ok", self.observed(task, step))
        if name == "task_done":
            if self.unfinished <= 0:
                return ("raise", ValueError("task_done() called too many times"))
            self.unfinished -= 1
            self._write_back()
            return OK
        if name == "close":
            self.closed = True
        elif name == "cancel_join_thread":
            self.join_thread_cancelled = True
        elif name == "join_thread":
            self._flush(task)
        # join (enabled only when nothing is unfinished): nothing to do
        return OK

    def observed(self, task: str, step: Step) -> Any:
        """What ``qsize()``/``full()`` answer: exact now, as CPython's semaphore
        count is (the module doc says why they have no stale view)."""
        if step.name == "qsize":
            return len(self.items)
        return self.full_now()

    def on_timeout(self, task: str, step: Step) -> tuple:
        if step.name == "put":
            return ("raise", Full())
        if step.name == "get":
            return ("raise", Empty())
        return ("ok", False)

    def blocked_reason(self, task: str, step: Step) -> str:
        where = f"{self.cls_name}.{step.name} ({self.label}) at {step.location}"
        if step.name == "put":
            return (
                f"waits forever in {where}: the queue is full ({len(self.items)}/{self.maxsize}) "
                "and no task can take from it"
            )
        if step.name == "get":
            return f"waits forever in {where}: the queue is empty and no task can put to it"
        if step.name == "join":
            return (
                f"waits forever in {where}: {self.unfinished} item(s) were put but not "
                "marked task_done() and no task can call task_done()"
            )
        return super().blocked_reason(task, step)


@register("joinable_queue")
class JoinableQueueModel(QueueModel):
    cls_name = "JoinableQueue"


@register("simple_queue")
class SimpleQueueModel(QueueModel):
    cls_name = "SimpleQueue"
