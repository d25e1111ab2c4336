"""The happens-before race detector (FastTrack-style epochs).

It watches every step the controller takes (``on_step(task, step, reply)``,
called after the model computed the reply) and keeps one vector clock per
task.  Synchronisation steps move clocks along the edges of the primitives:

* Lock / RLock release → the next acquire (and a Condition's lock: ``wait``
  releases it, ``reacquire`` acquires it); Semaphore release → acquire;
* Event ``set`` → a ``wait`` (or ``is_set``) that returns True;
* Condition ``notify`` → the notified task's wake-up;
* Barrier: every party's clock is joined at the release, every party leaves
  with the join;
* Queue ``put`` → the ``get`` that takes that item (a FIFO of clocks mirrors
  each queue), ``task_done`` → ``join``; Pipe ``send`` → the ``recv`` of that
  message, per direction; ``close`` → the EOFError;
* task start (parent → child), ``join`` / ``is_alive() is False`` /
  ``exitcode is not None`` (child's end → the caller); the run's own tasks
  start after setup, ordered after ``main``.

Accesses (see :mod:`races.detect.accesses`) are checked against the
location's last write epoch and its reads (one epoch per task): two accesses
race when at least one writes and neither happened before the other.  With
``granularity="line"`` the accesses a task's traced lines made since its last
step (see :func:`races._core.line_trace.drain`) are checked first at each of
its steps, before the step's own edges, and at its end.
"""
from __future__ import annotations

import collections
from typing import Any, Dict, List, Optional, Tuple

from . import vector_clock as vc
from .._core import line_trace
from .accesses import classify, classify_all, stack_of
from .report import Access, Race

_new_tuple = tuple.__new__  # an Access without NamedTuple's Python-level __new__ (once per access)
_ACCESS_KINDS = frozenset(("manager", "value", "shared", "file"))

_LOCKS = ("lock", "rlock")
_QUEUES = ("queue", "joinable_queue", "simple_queue")
_CHILDREN = ("process", "thread")


class _Shadow:
    """What one location remembers: the last write, and the reads since."""

    __slots__ = ("write", "reads")

    def __init__(self) -> None:
        self.write: Optional[Tuple[int, int, Access]] = None  # (tid, clock, access)
        self.reads: Dict[int, Tuple[int, Access]] = {}  # tid -> (clock, access)


class _Container:
    __slots__ = ("whole", "keys")

    def __init__(self) -> None:
        self.whole = _Shadow()
        self.keys: Dict[Any, _Shadow] = {}


class Detector:
    def __init__(self, controller: Any = None) -> None:
        self.controller = controller
        self.tids: Dict[str, int] = {"main": 0}
        self.names: List[str] = ["main"]
        self.clocks: List[vc.VC] = [[1]]
        self.held: List[tuple] = [()]  # per tid: (id, label) of the locks it holds
        self._rcount: Dict[Tuple[int, str], int] = {}
        self._saved: Dict[Tuple[int, str], int] = {}  # recursion counts a Condition wait saved
        self.sync: Dict[Any, vc.VC] = {}
        self.fifos: Dict[Any, collections.deque] = {}
        self.children: Dict[str, str] = {}  # process/thread object id -> task name
        self.containers: Dict[str, _Container] = {}
        self.races: List[Race] = []
        self._seen: set = set()
        self.accesses = 0

    # -- tasks ------------------------------------------------------------------
    def _tid(self, name: str, parent: Optional[str] = None) -> int:
        tid = self.tids.get(name)
        if tid is None:
            tid = len(self.names)
            self.tids[name] = tid
            self.names.append(name)
            ptid = self._tid(parent) if parent is not None else 0
            clock = list(self.clocks[ptid])
            vc.tick(clock, tid)
            self.clocks.append(clock)
            self.held.append(())
            vc.tick(self.clocks[ptid], ptid)
        return tid

    def on_task_start(self, parent: Optional[str], child: str) -> None:
        self._tid(child, parent or "main")

    def on_task_end(self, name: str) -> None:
        """Check the last accesses of a line-traced task; its clock stays as it
        ended (join reads it)."""
        for found in line_trace.drain(name, final=True):
            self._line_access(name, found)

    # -- sync edges ---------------------------------------------------------------
    def _release(self, tid: int, key: Any) -> None:
        clock = self.clocks[tid]
        target = self.sync.get(key)
        if target is None:
            self.sync[key] = list(clock)
        else:
            vc.join_into(target, clock)
        clock[tid] += 1

    def _acquire(self, tid: int, key: Any) -> None:
        source = self.sync.get(key)
        if source is not None:
            vc.join_into(self.clocks[tid], source)

    def _send(self, tid: int, key: Any) -> None:
        clock = self.clocks[tid]
        self.fifos.setdefault(key, collections.deque()).append(list(clock))
        clock[tid] += 1

    def _receive(self, tid: int, key: Any, remaining: Optional[int] = None) -> None:
        fifo = self.fifos.get(key)
        if not fifo:
            return
        if remaining is not None and len(fifo) <= remaining:
            return  # the item taken was put before the run (in setup)
        vc.join_into(self.clocks[tid], fifo.popleft())

    def _hold(self, tid: int, label: str, obj: str, acquired: bool) -> None:
        key = (tid, obj)
        n = self._rcount.get(key, 0) + (1 if acquired else -1)
        if n <= 0:
            self._rcount.pop(key, None)
            self.held[tid] = tuple(x for x in self.held[tid] if x[0] != obj)
        else:
            self._rcount[key] = n
            if n == 1 and acquired:
                self.held[tid] = self.held[tid] + ((obj, label),)

    def _model(self, kind: str, obj: Any) -> Any:
        if self.controller is None:
            return None
        return self.controller.models.get((kind, obj))

    def on_step(self, task: str, step: Any, reply: tuple) -> None:
        if line_trace._session.by_name:  # granularity="line": what its lines did since its last step
            for found in line_trace.drain(task):
                self._line_access(task, found)
        kind = step.kind
        if kind in _ACCESS_KINDS:  # one access: classify_all's branch inlined (a call more costs ~4% here)
            found = classify(step)
            if found is not None:
                self._record(task, found[0], found[1], found[2], found[3], step.location,
                             f"{step.label}.{step.name}", stack_of(step))
            return
        if kind == "point" and step.args:
            self._access(task, step)
            return
        if reply[0] != "ok":
            if kind == "pipe" and step.name == "recv" and isinstance(reply[1], EOFError):
                self._acquire(self._tid(task), ("pipe-close", step.obj, 1 - step.args[0]))
            return
        name = step.name
        if kind in _LOCKS:
            if name == "acquire":
                if reply[1]:
                    tid = self._tid(task)
                    self._acquire(tid, step.obj)
                    self._hold(tid, step.label or step.obj, step.obj, True)
            elif name == "release":
                tid = self._tid(task)
                self._release(tid, step.obj)
                self._hold(tid, step.label or step.obj, step.obj, False)
        elif kind == "condition":
            tid = self._tid(task)
            lock_obj, lock_label = step.args[1], step.args[2] or step.args[1]
            if name == "wait":
                self._release(tid, lock_obj)
                self.held[tid] = tuple(x for x in self.held[tid] if x[0] != lock_obj)
                self._saved[(tid, lock_obj)] = self._rcount.pop((tid, lock_obj), 1)
            elif name == "reacquire":
                self._acquire(tid, lock_obj)
                self.held[tid] = self.held[tid] + ((lock_obj, lock_label),)
                self._rcount[(tid, lock_obj)] = self._saved.pop((tid, lock_obj), 1)
            elif name in ("notify", "notify_all"):
                model = self._model("condition", step.obj)
                woken = list(model.notified) if model is not None else []
                for other in woken:
                    key = ("notify", step.obj, other)
                    target = self.sync.get(key)
                    if target is None:
                        self.sync[key] = list(self.clocks[tid])
                    else:
                        vc.join_into(target, self.clocks[tid])
                self.clocks[tid][tid] += 1
            elif name == "notified":
                if reply[1] and reply[1][0]:
                    self._acquire(tid, ("notify", step.obj, task))
                    self.sync.pop(("notify", step.obj, task), None)
        elif kind == "semaphore":
            if name == "acquire":
                if reply[1]:
                    self._acquire(self._tid(task), step.obj)
            elif name == "release":
                self._release(self._tid(task), step.obj)
        elif kind == "event":
            if name == "set":
                self._release(self._tid(task), step.obj)
            elif name in ("wait", "is_set") and reply[1]:
                self._acquire(self._tid(task), step.obj)
        elif kind == "barrier":
            tid = self._tid(task)
            if name == "wait":
                generation = reply[1][2]
                self._release(tid, ("barrier", step.obj, generation))
            elif name == "release":
                key = ("barrier", step.obj, step.args[1])
                self._acquire(tid, key)
                self._release(tid, key)
            elif name == "passed":
                self._acquire(tid, ("barrier", step.obj, step.args[1]))
        elif kind in _QUEUES:
            tid = self._tid(task)
            if name == "put":
                self._send(tid, step.obj)
            elif name == "get":
                model = self._model(kind, step.obj)
                remaining = len(model.items) if model is not None else None
                self._receive(tid, step.obj, remaining)
            elif name == "task_done":
                self._release(tid, ("done", step.obj))
            elif name == "join":
                self._acquire(tid, ("done", step.obj))
        elif kind == "pipe":
            tid = self._tid(task)
            end = step.args[0]
            if name == "send":
                self._send(tid, ("pipe", step.obj, 1 - end))
            elif name == "recv":
                self._receive(tid, ("pipe", step.obj, end))
            elif name == "close":
                self._release(tid, ("pipe-close", step.obj, end))
        elif kind in _CHILDREN:
            if name == "start":
                child = reply[1][0]
                self.children[step.obj] = child
                self._tid(child, task)
            elif name in ("join", "is_alive", "exitcode"):
                child = self.children.get(step.obj)
                finished = (reply[1] is False) if name != "exitcode" else (reply[1] is not None)
                if child is not None and finished:
                    tid = self._tid(task)
                    vc.join_into(self.clocks[tid], self.clocks[self._tid(child)])

    # -- accesses -------------------------------------------------------------------
    def _access(self, task: str, step: Any) -> None:
        for kind, container, keys, display, where, op, stack in classify_all(step):
            self._record(task, kind, container, keys, display, where, op, stack)

    def _line_access(self, task: str, found: Any) -> None:
        self._record(task, found.kind, found.container, (found.key,), found.display, found.where,
                     found.op, found.stack)

    def _record(self, task: str, kind: str, container: str, keys: Optional[tuple], display: str,
                where: str, op: str, stack: tuple) -> None:
        self.accesses += 1
        tid = self._tid(task)
        clock = self.clocks[tid]
        access = _new_tuple(Access, (kind, task, where, display, op, stack, self.held[tid], container))
        box = self.containers.get(container)
        if box is None:
            box = self.containers[container] = _Container()
        if keys is None:
            for shadow in box.keys.values():  # insertion order: deterministic
                self._check(shadow, tid, clock, access, update=False)
            self._check(box.whole, tid, clock, access, update=True)
        else:
            self._check(box.whole, tid, clock, access, update=False)
            for key in keys:
                cell = box.keys.get(key)
                if cell is None:
                    cell = box.keys[key] = _Shadow()
                self._check(cell, tid, clock, access, update=True)

    def _check(self, shadow: _Shadow, tid: int, clock: vc.VC, access: Access, update: bool) -> None:
        kind = access.kind
        w = shadow.write
        if w is not None and w[0] != tid and (kind == "write" or w[2].kind == "write"):
            if not vc.epoch_before(w[0], w[1], clock):
                self._report(w[2], access)
        if kind != "read":
            if kind == "write":
                for rtid, (rclock, prior) in shadow.reads.items():
                    if rtid != tid and not vc.epoch_before(rtid, rclock, clock):
                        self._report(prior, access)
            if update:
                shadow.write = (tid, clock[tid], access)
                if kind == "write":
                    shadow.reads = {}
        elif update:
            shadow.reads[tid] = (clock[tid], access)

    def _report(self, first: Access, second: Access) -> None:
        a = (first.display, first.where, first.kind)
        b = (second.display, second.where, second.kind)
        key = (first.container, min(a, b), max(a, b))
        if key in self._seen:
            return
        self._seen.add(key)
        self.races.append(Race.between(first, second))


def attach(controller: Any) -> Detector:
    """A detector observing every step ``controller`` takes."""
    detector = Detector(controller)
    for t in controller.tasks:
        detector._tid(t.name)
    controller.observers.append(detector.on_step)
    controller.on_task_end.append(lambda record: detector.on_task_end(record.name))
    return detector
