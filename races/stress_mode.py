"""``races.stress``: run the same tasks for real, many times, and count outcomes.

Where :func:`races.run` serialises tasks under a controller, ``stress`` runs
them truly in parallel, as real threads or real processes, with the real
primitives: nothing is patched, nothing is serialised.  Each run calls
``setup()``, releases every task at once through a start gate (a real
barrier), waits for them within ``timeout``, checks the invariant and tallies
the *outcome*, jcstress style: ``"ok"``, a failure kind (``invariant``,
``exception``, ``crash``, ``timeout``) or any other value the invariant
returns (an observation such as ``(r1, r2)``).  The result is a table of
outcome counts and a failure rate: the number a controlled schedule replaces.

The point hook.  In stress mode ``races.point(name)`` is a real rendezvous
rather than a controller step.  The hook is deliberately *not* an agent: an
agent bound with ``bind_thread``/``bind_process`` would make
``agent.current()`` non-None, and every controlled primitive (``races.Lock``,
patched ``time.sleep``, Manager calls) would then try to talk to a controller
instead of doing the real thing.  So a stress task is recorded in this
module's own registry (a thread-local for threads, a main-thread slot for a
task process) and ``races.point`` consults it only when no agent is bound::

    agent = _current()
    if agent is not None: ...                  # controlled: unchanged
    elif _stress_hooks.active: _stress_hooks.point(name)

``_hooks.active`` is a plain counter, so outside stress runs a point costs one
attribute read.  At a point, a task whose align point it is waits once per run
on a real barrier (``threading.Barrier`` / ``ctx.Barrier``) bounded by
``align_timeout``; a task that ends without reaching its align point arrives
there on the way out, so tasks that never pass the point do not hold the
others back.  Then a delay configured as ``"task:point"`` or ``"point"`` is a
real ``time.sleep`` (the original function, captured at import).

Processes.  Children are started with ``multiprocessing.get_context(start_method
or "forkserver")`` (never ``set_start_method``).  Each reports "ready" once it
has booted (imported and unpickled its task); the run's ``timeout`` counts
from when all have.  A races primitive outside the harness is its
``threading`` twin (``races.Lock`` is a ``threading.Lock``...), of which each
child process would get its own copy; so the parent finds every races
primitive reachable from the state and the task targets (a bounded walk of
the object graph), makes one real ``ctx`` object for each (``ctx.Lock``,
``RLock``, ``Semaphore``, ``Event``, ``Queue``, ``Barrier``, ``Condition``,
``RawValue``/``RawArray`` with the current contents), plugs it into the
primitive's local slot in the parent (so the invariant sees what the tasks
did) and hands it to the children, which plug it into their copies (by id)
before the task starts.  A primitive with no twin (``races.Pipe``) is named
in ``StressResult.notes``.

Alignment costs a wait when a task holds a lock at its align point and another
needs that lock to get there: the barrier then times out after
``align_timeout`` and the run goes on unaligned (``StressResult.unaligned``).

Timeouts.  A run that outlasts ``timeout`` is a ``timeout`` outcome with the
stacks of the tasks still running: ``sys._current_frames()`` for threads,
``faulthandler`` on SIGUSR1 for processes, which are then killed.  Threads
cannot be killed: they are left running (daemon threads), the outcome says so
and the campaign stops there rather than piling up stuck threads.

The module is ``races.stress_mode``; the package exports the function as
``races.stress``.
"""
from __future__ import annotations

import faulthandler
import gc
import multiprocessing
import os
import queue
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
import types
from collections.abc import Callable, Hashable, Mapping, Sequence
from contextlib import nullcontext, suppress
from dataclasses import dataclass, field
from multiprocessing.connection import wait as _mp_wait
from typing import Any

from . import _stress_hook
from ._core import patches as _patches
from ._stress_output import captured_fds, read_output, send_fds_to
from ._stress_sleep import check_scale, scaled_sleep

_real_sleep = _patches.real_sleep
_monotonic = time.monotonic

FAILURE_KINDS = ("invariant", "exception", "crash", "timeout")
DEFAULT_ALIGN_TIMEOUT = 0.1
DEFAULT_DELAY = 0.01
_STACK_READ_LIMIT = 1.0
_TERM_GRACE = 0.5  # a timed-out task process's SIGTERM handler gets this long before SIGKILL
_BOOT_TIMEOUT = 30.0  # a task process must import and unpickle its task within this
# step names that are operations of the controlled primitives, not races.point names
_NOT_POINTS = frozenset({
    "sleep", "acquire", "release", "locked", "start", "wait", "notify", "notify_all", "put", "get",
    "put_nowait", "get_nowait", "join", "task_done", "empty", "full", "qsize", "send", "recv", "poll", "set",
    "clear", "is_set", "terminate", "kill", "close", "join_thread",
})


# -- the point hook ----------------------------------------------------------------

_hooks = _stress_hook.hooks  # consulted by races.point


class _StressTask:
    """One task in one stress run: its align point, its barrier, its delays."""

    def __init__(
        self,
        name: str,
        align_point: str | None,
        barrier: Any,
        delays: Mapping[str, float],
        align_timeout: float,
    ) -> None:
        self.name = name
        self.align_point = align_point
        self.barrier = barrier
        self.delays = dict(delays)
        self.align_timeout = align_timeout
        self.aligned = align_point is None or barrier is None
        self.misaligned = False  # the barrier broke (timeout or abort): ran unaligned

    def point(self, name: str) -> None:
        if not isinstance(name, str) or not name or ":" in name:
            raise ValueError(f"point name {name!r} is invalid: use a non-empty string without ':'")
        if name == self.align_point and not self.aligned:
            self._arrive()
        delay = self.delays.get(f"{self.name}:{name}", self.delays.get(name))
        if delay:
            _real_sleep(delay)

    def _arrive(self) -> None:
        self.aligned = True
        try:
            self.barrier.wait(self.align_timeout)
        except threading.BrokenBarrierError:
            self.misaligned = True

    def finish(self) -> None:
        """A task that never reached its align point arrives on its way out."""
        if not self.aligned:
            self._arrive()


# -- results --------------------------------------------------------------------

@dataclass
class StressFailure:
    """The first failing run: its kind, a one-line message, the long text (a
    traceback, the stacks at a timeout, a crashed child's output) and what the
    run printed (``captured``: the tasks' stdout and stderr and those of the
    processes they started; see :mod:`races._stress_output`)."""

    kind: str
    message: str
    output: str = ""
    run: int = 0
    task: str | None = None
    captured: str = ""

    def __str__(self) -> str:
        return f"run {self.run}: {self.kind}: {self.message}"


@dataclass
class StressResult:
    runs: int
    outcomes: dict[Hashable, int]
    first_failure: StressFailure | None
    requested: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    unaligned: int = 0  # runs whose align barrier broke (timed out), so they ran unaligned

    @property
    def failures(self) -> int:
        return sum(n for outcome, n in self.outcomes.items() if _is_failure(outcome))

    @property
    def rate(self) -> float:
        """Fraction of runs that failed (0.0 when no run was made)."""
        return self.failures / self.runs if self.runs else 0.0

    @property
    def failed(self) -> bool:
        return self.failures > 0

    def report(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items() if v not in (None, {}, ""))
        lines = [f"stress: {self.runs} runs ({opts}) in {self.elapsed:.2f}s"]
        rows = sorted(self.outcomes.items(), key=lambda kv: (-kv[1], str(kv[0])))
        width = max([len("outcome")] + [len(_label(o)) for o, _ in rows])
        lines.append(f"  {'outcome':<{width}}  {'count':>7}  {'share':>7}  verdict")
        for outcome, count in rows:
            share = count / self.runs if self.runs else 0.0
            verdict = "FAILURE" if _is_failure(outcome) else ("ok" if outcome == "ok" else "observed")
            lines.append(f"  {_label(outcome):<{width}}  {count:>7}  {share:>7.1%}  {verdict}")
        lines.append(f"failure rate: {self.rate:.1%} ({self.failures}/{self.runs})")
        for note in self.notes:
            lines.append(f"note: {note}")
        if self.first_failure is not None:
            lines.append(f"first failure: {self.first_failure}")
            if self.first_failure.output:
                lines.append(self.first_failure.output.rstrip())
            if self.first_failure.captured:
                lines.append(f"what run {self.first_failure.run} printed:")
                lines.append(self.first_failure.captured.rstrip())
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.report()


def _is_failure(outcome: Hashable) -> bool:
    return isinstance(outcome, str) and outcome in FAILURE_KINDS


def _label(outcome: Hashable) -> str:
    return outcome if isinstance(outcome, str) else repr(outcome)


# -- option checking -------------------------------------------------------------

def _normalize_align(align: None | str | Mapping[str, str], names: Sequence[str]) -> dict[str, str]:
    if align is None:
        return {}
    if isinstance(align, str):
        _check_point_name(align, "align")
        return {n: align for n in names}
    if isinstance(align, Mapping):
        out = {}
        for task, point in align.items():
            if task not in names:
                raise ValueError(f"align names unknown task {task!r}; the tasks are {', '.join(names)}")
            _check_point_name(point, f"align[{task!r}]")
            out[task] = point
        return out
    raise ValueError(f"align must be a point name or a dict of task -> point name, not {align!r}")


def _normalize_delays(delays: Mapping[str, float] | None, names: Sequence[str]) -> dict[str, float]:
    if not delays:
        return {}
    if not isinstance(delays, Mapping):
        raise TypeError(f"delays must be a dict like {{'task:point': seconds}}, not {delays!r}")
    out = {}
    for key, seconds in delays.items():
        if not isinstance(key, str):
            raise TypeError(f"delay key {key!r} must be 'task:point' or 'point'")
        task, sep, point = key.partition(":")
        if sep:
            if task not in names:
                raise ValueError(f"delay {key!r} names unknown task {task!r}; the tasks are {', '.join(names)}")
            _check_point_name(point, f"delay {key!r}")
        else:
            _check_point_name(key, f"delay {key!r}")
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
            raise ValueError(f"delay {key!r} must be a non-negative number of seconds, not {seconds!r}")
        out[key] = float(seconds)
    return out


def _check_point_name(name: Any, what: str) -> None:
    if not isinstance(name, str) or not name or ":" in name:
        raise ValueError(f"{what}: point name {name!r} is invalid: use a non-empty string without ':'")


# -- races.Lock across processes ----------------------------------------------------

def _walk(roots: Sequence[Any], limit: int = 50_000):  # type: ignore[no-untyped-def]
    """Objects reachable from ``roots`` (not through modules, classes or code)."""
    seen: set = set()
    stack = list(roots)
    atoms = (str, bytes, int, float, complex, bool, type(None), types.ModuleType, type, types.CodeType,
             types.FrameType, types.BuiltinFunctionType)
    while stack and len(seen) < limit:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, atoms):
            continue
        seen.add(id(obj))
        yield obj
        if isinstance(obj, types.FunctionType):
            stack.extend(_cell_contents(obj.__closure__ or ()))
            stack.extend(obj.__defaults__ or ())
            continue
        stack.extend(gc.get_referents(obj))


def _cell_contents(cells: Sequence[Any]) -> list[Any]:
    out = []
    for cell in cells:
        try:
            out.append(cell.cell_contents)
        except ValueError:  # an empty cell
            continue
    return out


def _primitives(roots: Sequence[Any]) -> dict[str, Any]:
    """Every races primitive (``races.Lock``, ``Event``...) reachable from ``roots``, by id."""
    return {
        obj._id: obj for obj in _walk(roots)
        if type(obj).__module__.startswith("races.primitives") and hasattr(obj, "_fallback")
        and isinstance(getattr(obj, "_id", None), str)
    }


def _process_twins(ctx: Any, found: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A real ``ctx`` object for every races primitive in ``found`` (by id), to stand for
    it in every task process and in the parent; and notes on the ones not bridged."""
    twins: dict[str, Any] = {}
    notes = []
    kinds = {obj_id: type(obj).__name__ for obj_id, obj in found.items()}
    # locks first: a Condition is made over its lock's twin
    for obj_id in sorted(found, key=lambda i: kinds[i] not in ("Lock", "RLock")):
        obj, kind = found[obj_id], kinds[obj_id]
        twin: Any = None
        if kind == "Lock":
            twin = ctx.Lock()
        elif kind == "RLock":
            twin = ctx.RLock()
        elif kind in ("Semaphore", "BoundedSemaphore"):
            twin = getattr(ctx, kind)(getattr(obj, "_initial", 1))
        elif kind == "Event":
            twin = ctx.Event()
        elif kind in ("Queue", "SimpleQueue"):  # ctx.SimpleQueue lacks put(obj, block, timeout)
            twin = _queue_twin(ctx.Queue(getattr(obj, "_maxsize", 0) or 0), obj)
        elif kind == "JoinableQueue":
            twin = _queue_twin(ctx.JoinableQueue(getattr(obj, "_maxsize", 0) or 0), obj)
        elif kind == "Barrier":
            twin = ctx.Barrier(obj._parties, obj._action, obj._timeout)
        elif kind == "Condition" and getattr(obj._lock, "_id", None) in twins:
            twin = ctx.Condition(twins[obj._lock._id])
        elif kind in ("Value", "Array"):
            twin = _shared_ctypes(ctx, obj)
        if twin is None:
            notes.append(f"{obj!r} is not shared between task processes in stress mode: each has its own")
        else:
            twins[obj_id] = twin
    return twins, notes


def _queue_twin(twin: Any, obj: Any) -> Any:
    """``twin`` with the items setup() put into ``obj`` (moved: the parent's
    ``obj`` is plugged to the twin next)."""
    local = obj._local
    if local is not None and not isinstance(local, _Shared):
        while True:
            try:
                twin.put(local.get_nowait())
            except queue.Empty:
                break
    return twin


def _shared_ctypes(ctx: Any, obj: Any) -> Any:
    """``ctx.RawValue``/``RawArray`` with the contents ``obj`` has now (setup may have written)."""
    import ctypes

    local = obj._fallback()
    if isinstance(local, ctypes.Array):
        twin = ctx.RawArray(local._type_, len(local))
    else:
        twin = ctx.RawValue(type(local))
    ctypes.memmove(ctypes.addressof(twin), ctypes.addressof(local), ctypes.sizeof(local))
    return twin


class _Shared:
    """A ``ctx`` primitive behind the ``threading`` signatures races primitives call
    (``acquire(blocking, timeout)`` with -1 meaning forever, ``release(n)``...)."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        if not blocking:
            return self._real.acquire(False)
        return self._real.acquire(True, None if timeout is None or timeout < 0 else timeout)

    def release(self, n: int = 1) -> None:
        for _ in range(n):
            self._real.release()

    def locked(self) -> bool:
        if self._real.acquire(False):
            self._real.release()
            return False
        return True

    def _is_owned(self) -> bool:
        return self._real._semlock._is_mine()

    def __getattr__(self, name: str) -> Any:  # Event and the queues: the same names
        return getattr(self._real, name)


def _plug_primitives(roots: Sequence[Any], shared: Mapping[str, Any]) -> None:
    """Make every races primitive under ``roots`` use its process-shared twin."""
    if not shared:
        return
    for obj in _walk(roots):
        if type(obj).__module__.startswith("races.primitives") and getattr(obj, "_id", None) in shared:
            twin = shared[obj._id]
            obj._local = twin if type(obj).__name__ in ("Value", "Array") else _Shared(twin)


# -- one run --------------------------------------------------------------------

class _Run:
    """What one run produced: outcome (or failure) and the long text."""

    def __init__(self) -> None:
        self.kind: str | None = None
        self.message = ""
        self.output = ""
        self.task: str | None = None
        self.stuck_threads = 0
        self.misaligned = False  # the align barrier broke: this run was not aligned
        self.notes: list[str] = []
        self.printed: list[tuple[str, str]] = []  # (label, path) of the files its output went to

    def fail(self, kind: str, message: str, output: str = "", task: str | None = None) -> None:
        order = {k: i for i, k in enumerate(("timeout", "crash", "exception", "invariant"))}
        if self.kind is None or order[kind] < order[self.kind]:
            self.kind, self.message, self.output, self.task = kind, message, output, task


def _thread_main(task: _StressTask, target: Callable, state: Any, gate: Any, errors: dict[str, tuple]) -> None:
    _hooks.tls.task = task
    try:
        try:
            gate.wait()
        except threading.BrokenBarrierError:
            pass
        try:
            target(state)
        except BaseException as exc:  # noqa: BLE001 - a task's failure is data
            errors[task.name] = _describe(exc)
        finally:
            task.finish()
    finally:
        _hooks.tls.task = None


def _describe(exc: BaseException) -> tuple:
    from ._core.thread_transport import describe_exception

    return describe_exception(exc)


def _children_since(before: Sequence[int]) -> list[Any]:
    """The live multiprocessing children of this process not in ``before`` (pids)."""
    return [p for p in multiprocessing.active_children() if p.pid not in before]


def _exit_like_a_program(before: Sequence[int], deadline: float, run: _Run) -> None:
    """What interpreter exit does to the processes the task threads started
    (``multiprocessing``'s exit handler): terminate the daemons, join the
    others, here within the run's ``deadline``; whatever is still alive then
    is a ``timeout`` and is killed, so nothing outlives the run."""
    for child in _children_since(before):
        if child.daemon:
            child.terminate()
    for child in _children_since(before):
        child.join(max(0.0, deadline - _monotonic()))
    late = _children_since(before)
    if late:
        run.fail("timeout", "process(es) started by the tasks were still running at the run's timeout: "
                 + ", ".join(f"{p.name} (pid {p.pid})" for p in late))
    for child in late:
        child.kill()
        child.join(5.0)


def _run_threads(names, targets, state, align, delays, align_timeout, timeout, run: _Run) -> None:  # type: ignore[no-untyped-def]
    before = [p.pid for p in multiprocessing.active_children() if p.pid is not None]
    try:
        _run_thread_tasks(names, targets, state, align, delays, align_timeout, timeout, run)
    finally:
        _exit_like_a_program(before, _monotonic() + (timeout if run.kind is None else 0.0), run)


def _run_thread_tasks(names, targets, state, align, delays, align_timeout, timeout, run: _Run) -> None:  # type: ignore[no-untyped-def]
    n = len(names)
    gate = threading.Barrier(n, timeout=timeout)
    barrier = threading.Barrier(len(align), timeout=align_timeout) if align else None
    errors: dict[str, tuple] = {}
    threads = []
    tasks = []
    for name, target in zip(names, targets):
        task = _StressTask(name, align.get(name), barrier, delays, align_timeout)
        tasks.append(task)
        threads.append(threading.Thread(
            target=_thread_main, args=(task, target, state, gate, errors), name=f"races-stress:{name}", daemon=True
        ))
    for t in threads:
        t.start()
    deadline = _monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - _monotonic()))
    stuck = [(name, t) for name, t in zip(names, threads) if t.is_alive()]
    run.misaligned = any(task.misaligned for task in tasks)
    if stuck:
        gate.abort()
        if barrier is not None:
            barrier.abort()
        frames = sys._current_frames()
        stacks = []
        for name, t in stuck:
            frame = frames.get(t.ident) if t.ident is not None else None
            stack = "".join(traceback.format_stack(frame)) if frame is not None else "  (no frame)\n"
            stacks.append(f"Stack of task {name!r} (thread {t.name}):\n{stack}")
        run.stuck_threads = len(stuck)
        run.fail(
            "timeout",
            f"timed out after {timeout}s; task thread(s) {', '.join(n for n, _ in stuck)} still running: "
            "threads cannot be killed, so they are left running (daemon threads)",
            "\n".join(stacks),
            stuck[0][0],
        )
        return
    for name in names:
        if name in errors:
            typ, msg, tb = errors[name]
            run.fail("exception", f"task {name!r} raised {typ}: {msg}", tb, name)
            return


def _end_at_timeout(signum: int, frame: Any) -> None:
    """SIGTERM in a stress task process (its run timed out): unlink the named
    semaphores the task made (their finalizers; ``os._exit`` or a SIGKILL
    would leave them to the resource tracker, which warns about every one at
    its shutdown), then exit at once, joining nothing."""
    from multiprocessing import util

    try:
        util._run_finalizers(0)  # type: ignore[attr-defined]  # exit priority >= 0: no thread joins
    finally:
        os._exit(128 + signum)


def _process_main(
    name: str, target: Callable, state: Any, conn: Any, gate: Any, barrier: Any, align_point: str | None,
    delays: dict[str, float], align_timeout: float, shared: dict[str, Any], stack_path: str,
    sleep_scale: float | None = None, output_path: str | None = None,
) -> None:
    """Entry point of a stress task process."""
    if output_path is not None:
        send_fds_to(output_path)
    dump = open(stack_path, "w")  # noqa: SIM115 - lives as long as the process
    if hasattr(signal, "SIGUSR1"):
        faulthandler.register(signal.SIGUSR1, file=dump, all_threads=True)
    faulthandler.enable(file=dump, all_threads=True)
    signal.signal(signal.SIGTERM, _end_at_timeout)
    _plug_primitives([state, target], shared)
    task = _StressTask(name, align_point, barrier, delays, align_timeout)
    _hooks.process_task, _hooks.process_thread = task, threading.get_ident()
    _hooks.enter()
    message: tuple = ("done",)
    conn.send(("ready",))
    try:
        try:
            gate.wait()
        except threading.BrokenBarrierError:
            pass
        try:
            with scaled_sleep(sleep_scale):
                target(state)
        except BaseException as exc:  # noqa: BLE001
            message = ("error", _describe(exc))
        finally:
            task.finish()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    conn.send((*message, task.misaligned))
    conn.close()


def _kill_descendants(pid: int | None) -> None:
    """Kill every process below ``pid``: a killed task's own children would
    otherwise be left running, orphaned."""
    import psutil

    if pid is None:
        return
    try:
        below = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return
    for child in below:
        try:
            child.kill()
        except psutil.Error:
            pass
    alive = below
    deadline = _monotonic() + 2.0
    while alive and _monotonic() < deadline:  # bounded: SIGKILL lands asynchronously
        alive = [p for p in alive if _still_running(p)]
        if alive:
            _real_sleep(0.005)


def _still_running(proc: Any) -> bool:
    """True until ``proc`` is gone or a zombie (dead, waiting for its reaper)."""
    import psutil

    try:
        return bool(proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def _read_stack(path: str, limit: float) -> str:
    text = ""
    deadline = _monotonic() + limit
    while _monotonic() < deadline:  # bounded: faulthandler writes from a signal handler
        _real_sleep(0.01)
        try:
            with open(path, errors="replace") as fh:
                latest = fh.read()
        except OSError:
            break
        if latest and latest == text:
            break
        text = latest
    return text


def _run_processes(ctx, names, targets, state, align, delays, align_timeout, timeout, run: _Run,  # type: ignore[no-untyped-def]
                   folder: str, sleep_scale: float | None = None, capture_output: bool = True) -> None:
    n = len(names)
    gate = ctx.Barrier(n, timeout=max(_BOOT_TIMEOUT, timeout))
    barrier = ctx.Barrier(len(align), timeout=align_timeout) if align else None
    shared, notes = _process_twins(ctx, _primitives([state, *targets]))
    run.notes.extend(notes)
    _plug_primitives([state, *targets], shared)  # the parent too: the invariant reads them
    procs, conns, paths = [], [], []
    try:
        for i, (name, target) in enumerate(zip(names, targets)):
            reader, writer = ctx.Pipe(duplex=False)
            path = os.path.join(folder, f"task{i}.stack")
            output_path = os.path.join(folder, f"task{i}.out") if capture_output else None
            if output_path is not None:
                with suppress(FileNotFoundError):
                    os.unlink(output_path)  # the last run's: a task that dies before it starts prints nothing
                run.printed.append((f"task {name}", output_path))
            # not a daemon: a task may start processes of its own (a daemon may not); reaped below
            proc = ctx.Process(
                target=_process_main, name=f"races-stress:{name}", daemon=False,
                args=(name, target, state, writer, gate, barrier, align.get(name), delays, align_timeout,
                      shared, path, sleep_scale, output_path),
            )
            proc.start()
            writer.close()
            procs.append(proc)
            conns.append(reader)
            paths.append(path)
        messages: dict[int, tuple] = {}
        exited: dict[int, int] = {}
        started: set = set()  # sent "ready" (booted, about to wait at the gate) or died
        boot_deadline = _monotonic() + max(_BOOT_TIMEOUT, timeout)
        deadline: float | None = None  # the run's timeout counts once every task has booted
        waiting = {**{p.sentinel: ("proc", i) for i, p in enumerate(procs)},
                   **{c: ("conn", i) for i, c in enumerate(conns)}}

        def receive(i: int) -> None:
            try:
                message = conns[i].recv()
            except (EOFError, OSError):
                waiting.pop(conns[i], None)
                return
            if message[0] == "ready":
                started.add(i)
            else:
                messages[i] = message
                waiting.pop(conns[i], None)

        while waiting:
            if deadline is None and len(started) == n:
                deadline = _monotonic() + timeout
            remaining = (deadline if deadline is not None else boot_deadline) - _monotonic()
            if remaining <= 0:
                break
            for ready in _mp_wait(list(waiting), remaining):
                entry = waiting.get(ready)
                if entry is None:  # the conn of a process already seen dead
                    continue
                what, i = entry
                if what == "conn":
                    receive(i)
                    continue
                waiting.pop(ready)
                procs[i].join(1.0)
                exited[i] = procs[i].exitcode if procs[i].exitcode is not None else -1
                started.add(i)
                while conns[i] in waiting and conns[i].poll():
                    receive(i)
                waiting.pop(conns[i], None)
                if i not in messages:  # it died: do not keep the others at the gate or barrier
                    gate.abort()
                    if barrier is not None:
                        barrier.abort()
        stuck = [i for i in range(n) if i not in exited]
        if stuck:
            gate.abort()
            if barrier is not None:
                barrier.abort()
            stacks = []
            for i in stuck:
                proc = procs[i]
                text = ""
                if hasattr(signal, "SIGUSR1") and proc.is_alive():
                    try:
                        os.kill(proc.pid, signal.SIGUSR1)
                        text = _read_stack(paths[i], _STACK_READ_LIMIT)
                    except OSError:
                        text = ""
                stacks.append(f"Stack of task {names[i]!r} (pid {proc.pid}):\n{text or '  (no stack dump)'}")
            late = "" if deadline is not None else f" (not all had started after {max(_BOOT_TIMEOUT, timeout)}s)"
            run.fail(
                "timeout",
                f"timed out after {timeout}s{late}; task process(es) {', '.join(names[i] for i in stuck)} "
                "were killed",
                "\n".join(stacks),
                names[stuck[0]],
            )
            return
        run.misaligned = any(m[-1] is True for m in messages.values())
        for i in range(n):
            code = exited[i]
            if i not in messages:
                how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
                output = _read_stack(paths[i], 0.05) if os.path.exists(paths[i]) else ""
                run.fail("crash", f"task process {names[i]!r} {how} without reporting", output, names[i])
            elif messages[i][0] == "error":
                typ, msg, tb = messages[i][1]
                run.fail("exception", f"task {names[i]!r} raised {typ}: {msg}", tb, names[i])
    finally:
        for proc in procs:
            if proc.is_alive():
                _kill_descendants(proc.pid)  # what the task started (a forkserver, children) goes too
                proc.terminate()  # _end_at_timeout: its semaphores unlinked, then gone
                proc.join(_TERM_GRACE)
            if proc.is_alive():
                proc.kill()
            proc.join(5.0)
            if proc.exitcode is not None:
                proc.close()
        for conn in conns:
            conn.close()


def _check_invariant(invariant: Callable, state: Any, run: _Run) -> Hashable:
    try:
        value = invariant(state)
    except AssertionError as exc:
        run.fail("invariant", f"invariant failed: {exc or 'assertion failed'}", traceback.format_exc())
        return "invariant"
    except Exception as exc:  # noqa: BLE001
        run.fail("exception", f"invariant raised {type(exc).__name__}: {exc}", traceback.format_exc())
        return "exception"
    if value is None or value is True:
        return "ok"
    if value is False:
        name = getattr(invariant, "__qualname__", "invariant")
        run.fail("invariant", f"invariant {name}() returned False")
        return "invariant"
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value


# -- the public entry points ---------------------------------------------------------

def stress(
    setup: Callable[[], Any],
    tasks: Any,
    invariant: Callable[[Any], Any] | None = None,
    runs: int = 100,
    backend: str = "thread",
    start_method: str | None = None,
    align: None | str | Mapping[str, str] = None,
    delays: Mapping[str, float] | None = None,
    timeout: float = 5.0,
    *,
    teardown: Callable[[Any], Any] | None = None,
    align_timeout: float = DEFAULT_ALIGN_TIMEOUT,
    sleep_scale: float | None = None,
    stop_on_first: bool | str = False,
    capture_output: bool = True,
) -> StressResult:
    """Run ``tasks`` in parallel for real ``runs`` times and count the outcomes.

    ``align``: a point name where every task meets once per run, or a dict
    task -> point (tasks not in it are not held).  ``delays``: real sleeps at
    points, ``{"task:point": seconds}`` or ``{"point": seconds}`` for every
    task.  ``timeout`` bounds every run; ``align_timeout`` bounds a wait at
    the align point (then the run goes on unaligned).  ``sleep_scale``: the
    tasks' ``time.sleep(t)`` sleeps ``t * sleep_scale`` for real (see
    :mod:`races._stress_sleep`), for programs whose real sleeps are too long.
    ``stop_on_first``: True stops after the first failing run, a failure kind
    (``"invariant"``...) after the first run that fails that way; ``runs`` is
    then a cap (``StressResult.runs`` says how many were made).
    ``capture_output``: keep what each run prints (file descriptors 1 and 2 of
    the tasks and of what they start) off the terminal; the first failing
    run's is ``first_failure.captured``.  False lets it through, as printed.
    """
    from ._core.errors import SetupError, TaskError
    from ._core.runner import _active_context, _check_options, normalize_tasks

    names, targets = normalize_tasks(tasks)
    _check_options(backend, start_method, timeout)
    if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
        raise ValueError(f"runs must be a positive number of runs, not {runs!r}")
    if not isinstance(stop_on_first, bool) and stop_on_first not in FAILURE_KINDS:
        raise ValueError(f"stop_on_first must be True, False or a failure kind ({', '.join(FAILURE_KINDS)}), "
                         f"not {stop_on_first!r}")
    if not isinstance(align_timeout, (int, float)) or align_timeout <= 0:
        raise ValueError(f"align_timeout must be a positive number of seconds, not {align_timeout!r}")
    if not callable(setup):
        raise TaskError(f"setup must be a callable returning the shared state, not {setup!r}")
    align_map = _normalize_align(align, names)
    delay_map = _normalize_delays(delays, names)
    scale = check_scale(sleep_scale)
    method = start_method or ("forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn")
    ctx = multiprocessing.get_context(method)
    if backend == "process" and method != "fork":
        from ._core.launchers import check_picklable

        for name, target in zip(names, targets):
            check_picklable(name, target, method)

    options = {"backend": backend, "start_method": method if backend == "process" else None,
               "align": align, "delays": delays or None, "timeout": timeout, "sleep_scale": scale}
    outcomes: dict[Hashable, int] = {}
    first: StressFailure | None = None
    notes: list[str] = []
    done = 0
    unaligned = 0
    started = _monotonic()
    folder = tempfile.mkdtemp(prefix="races-stress-") if backend == "process" or capture_output else ""
    printed = os.path.join(folder, "run.out") if backend == "thread" and capture_output else None
    _hooks.enter()
    try:
        for index in range(runs):
            tracker = _patches.ManagerTracker()
            _active_context.append(ctx)
            try:
                with tracker:
                    state = setup()
            except Exception as exc:
                _active_context.pop()
                tracker.shutdown_all()
                raise SetupError(f"setup() raised {type(exc).__name__}: {exc}") from exc
            run = _Run()
            try:
                if backend == "thread":
                    with scaled_sleep(scale), (captured_fds(printed) if printed else nullcontext()):
                        _run_threads(names, targets, state, align_map, delay_map, align_timeout, timeout, run)
                    run.printed = [("", printed)] if printed else []
                else:
                    _run_processes(ctx, names, targets, state, align_map, delay_map, align_timeout, timeout,
                                   run, folder, scale, capture_output)
                outcome: Hashable = run.kind or "ok"
                if run.kind is None and invariant is not None:
                    outcome = _check_invariant(invariant, state, run)
            finally:
                try:
                    if teardown is not None:
                        teardown(state)
                finally:
                    _active_context.pop()
                    tracker.shutdown_all()
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            done += 1
            unaligned += run.misaligned
            if run.kind is not None and first is None:
                first = StressFailure(run.kind, run.message, run.output, index, run.task, read_output(run.printed))
            for note in run.notes:
                if note not in notes:
                    notes.append(note)
            if run.stuck_threads:
                notes.append(
                    f"run {index} timed out with {run.stuck_threads} task thread(s) stuck; threads cannot be "
                    f"killed, so the remaining {runs - done} run(s) were not made"
                )
                break
            if (stop_on_first is True and _is_failure(outcome)) or \
                    (isinstance(stop_on_first, str) and outcome == stop_on_first):
                break
    finally:
        _hooks.leave()
        if folder:
            shutil.rmtree(folder, ignore_errors=True)
    if unaligned:
        notes.append(
            f"{unaligned} of {done} run(s) were not aligned: the align barrier timed out after {align_timeout}s "
            "(a task did not reach its point, e.g. it waited for a lock a task at the point holds)"
        )
    return StressResult(done, outcomes, first, runs, options, notes, _monotonic() - started, unaligned)


# -- scenarios -------------------------------------------------------------------

def scenario_points(scenario: Any) -> list[str]:
    """The ``races.point`` names the scenario's forcing schedule stops at (a guess:
    step names that are built-in sync points, like ``sleep`` or Manager calls, are left out)."""
    out: list[str] = []
    for step in scenario.schedule:
        _, sep, point = str(step).partition(":")
        point = point.strip()
        if sep and point and point not in _NOT_POINTS and "." not in point and not point.startswith("_") \
                and point not in out:
            out.append(point)
    return out


HANG_TIMEOUT = 2.0  # a real run of a bug that hangs: its timeout, once every task has started


def stress_settings(scenario: Any, aligned: bool = True, delayed: bool = False,
                    backend: str | None = None) -> dict[str, Any]:
    """How to stress ``scenario`` on ``backend``: ``align`` and ``delays`` from
    ``scenario.options["stress"]`` when it has them, else alignment at the
    points its forcing schedule names and a ``DEFAULT_DELAY`` there.

    Also from the declaration: ``why_not`` (only control shows the bug; a
    dict backend -> reason when that holds on some backends only),
    ``fix_limits`` (backend -> why a fix cannot be stressed there) and
    ``shows_as``, the failure kind a real run shows the bug as (default: the
    kind the scenario expects under control; they differ when the controlled
    harness sees inside a process that a real run cannot, e.g. an exception a
    daemon's own child raises).  ``hangs`` (what hangs, e.g. ``"its fourth
    put"``) declares a bug that hangs a real run: on processes stress shows
    it as a ``timeout`` (the tasks' stacks dumped, the processes killed,
    ``timeout`` is then :data:`HANG_TIMEOUT`); on threads it is ``why_not``,
    since a stuck thread cannot be killed.  ``backend=None`` answers for
    threads.
    """
    conf = dict(scenario.options.get("stress", {}) or {})
    points = scenario_points(scenario)
    align = conf.get("align", points[0] if len(points) == 1 else None) if aligned else None
    delays = None
    if delayed:
        delays = conf.get("delays")
        if delays is None:
            if isinstance(align, Mapping):
                targets = sorted(set(align.values()))
            elif isinstance(align, str):
                targets = [align]
            else:
                targets = points
            delays = {p: DEFAULT_DELAY for p in targets} or None
    why_not, shows_as, timeout = conf.get("why_not"), conf.get("shows_as") or scenario.expect, None
    if isinstance(why_not, Mapping):  # backend -> why only control shows it there
        why_not = why_not.get(backend or "thread")
    if conf.get("hangs"):
        if backend == "process":
            shows_as, timeout = "timeout", HANG_TIMEOUT
        else:
            why_not = (f"{conf['hangs']} would hang a real run for good, and a stuck thread cannot be killed "
                       "(on processes, stress shows it as a timeout)")
    return {"align": align, "delays": delays, "why_not": why_not,
            "fix_limits": dict(conf.get("fix_limits") or {}), "shows_as": shows_as, "timeout": timeout}


def stress_scenario(
    scenario: Any,
    variant: str = "buggy",
    runs: int = 100,
    backend: str = "thread",
    aligned: bool = True,
    delayed: bool = False,
    **options: Any,
) -> StressResult:
    """Stress one variant of a :class:`races.Scenario` (see :func:`stress_settings`;
    a buggy variant that hangs for real gets its short ``timeout``)."""
    settings = stress_settings(scenario, aligned, delayed, backend)
    if variant == "buggy" and settings["timeout"] is not None:
        options["timeout"] = min(options.get("timeout", settings["timeout"]), settings["timeout"])
    result = stress(
        scenario.setup, scenario.tasks_for(variant), scenario.invariant, runs=runs, backend=backend,
        align=options.pop("align", settings["align"]), delays=options.pop("delays", settings["delays"]),
        teardown=scenario.teardown, **options,
    )
    if settings["why_not"] and variant == "buggy":
        result.notes.append(f"why stress may not show it: {settings['why_not']}")
    return result


@dataclass
class FidelityRow:
    """One variant on one backend under stress (see :func:`fidelity`)."""

    scenario: str
    variant: str
    backend: str
    runs: int
    failures: int
    rate: float
    outcomes: dict[Hashable, int]
    note: str = ""
    expect: str | None = None  # the buggy variant: the failure kind the model reproduces

    @property
    def timeouts(self) -> int:
        return self.outcomes.get("timeout", 0)

    @property
    def skipped(self) -> bool:
        return self.runs == 0

    @property
    def ok(self) -> bool:
        """A fix must never fail under stress; a buggy variant must show its
        failure (the kind its scenario expects) in some run, unless skipped."""
        if self.variant != "buggy":
            return self.failures == 0
        return self.skipped or self.outcomes.get(self.expect or "", 0) > 0

    @property
    def verdict(self) -> str:
        if self.ok:
            return "skipped" if self.skipped else "ok"
        if self.variant != "buggy":
            return "FAILS FOR REAL: the model says this fix holds"
        return (f"NEVER SHOWN: the model reproduces {self.expect!r} but {self.runs} aligned real run(s) "
                "never did (declare why_not if only control can show it)")


def fidelity(
    scenario: Any,
    runs: int = 20,
    backends: Sequence[str] = ("thread", "process"),
    bug_runs: int = 1000,
    buggy: bool = True,
    **options: Any,
) -> list[FidelityRow]:
    """Check the controlled model against reality: stress every variant of
    ``scenario`` on each backend it applies to, aligned as
    :func:`stress_settings` says.

    Each fix runs ``runs`` times and must never fail (a fix that fails for
    real is a scenario whose control lies).  The buggy variant runs until it
    fails the way the scenario expects (its ``shows_as``, see
    :func:`stress_settings`), at most ``bug_runs`` times: a bug the model
    reproduces that real runs never show is a model (or a declaration) that
    is wrong too.  ``buggy=False`` skips the buggy
    variant.  A bug declared to hang (``hangs``) must show as a ``timeout`` on
    processes; it is skipped on threads (a stuck thread cannot be killed),
    with the reason in the row's note, and so is a bug whose scenario
    declares ``why_not`` (it can only be shown under control).  A fix is
    skipped on a backend named in the scenario's ``fix_limits`` (backend ->
    why stress cannot run it there: a limit of stress mode, not of the
    model).  ``options`` go to :func:`stress` (``timeout``, ``start_method``...).
    """
    rows = []
    for backend in backends:
        if backend not in scenario.backends:
            continue
        settings = stress_settings(scenario, backend=backend)
        why_not, limits, shows_as = settings["why_not"], settings["fix_limits"], settings["shows_as"]
        for variant in scenario.variants():
            expect = shows_as if variant == "buggy" else None

            def skipped(why: str) -> FidelityRow:
                return FidelityRow(scenario.name, variant, backend, 0, 0, 0.0, {}, f"skipped: {why}", expect)

            if variant == "buggy" and not buggy:
                continue
            if variant == "buggy" and why_not:
                rows.append(skipped(why_not))
            elif variant != "buggy" and backend in limits:
                rows.append(skipped(limits[backend]))
            elif variant == "buggy" and backend == "thread" and scenario.expect == "deadlock":
                rows.append(skipped("a deadlocked thread cannot be killed"))
            else:
                bug = variant == "buggy"
                result = stress_scenario(scenario, variant, runs=bug_runs if bug else runs, backend=backend,
                                         aligned=True, **({"stop_on_first": shows_as} if bug else {}),
                                         **options)
                rows.append(FidelityRow(scenario.name, variant, backend, result.runs, result.failures,
                                        result.rate, dict(result.outcomes), "; ".join(result.notes), expect))
    return rows


__all__ = [
    "FidelityRow",
    "StressFailure",
    "StressResult",
    "fidelity",
    "scenario_points",
    "stress",
    "stress_scenario",
    "stress_settings",
]
