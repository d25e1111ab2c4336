"""``run`` and ``replay``: build the tasks, call setup, drive one controlled
run, check the invariant, and package the Result."""
from __future__ import annotations

import hashlib
import multiprocessing
import random
import sys
import threading
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from . import affinity, ids, line_trace, patch_mode, patches
from . import watch as _watch
from . import schedule as schedule_mod
from . import token as token_mod
from .controller import Controller, TaskHandle
from .errors import ReplayError, SetupError, TaskError
from ..detect.lock_order import LockOrder
from .result import Result
from .step import Failure
from .thread_transport import ThreadTask, describe_exception
from ..primitives import process as process_children
from .. import detect as _detect

Tasks = Union[Mapping[str, Callable], Sequence[Callable]]

BACKENDS = ("thread", "process")
START_METHODS = ("spawn", "forkserver", "fork")

_active_context: List[Any] = []


_default_method: List[str] = []
_contexts: Dict[str, Any] = {}  # start method -> multiprocessing context (the same object every time)


def default_start_method() -> str:
    if not _default_method:  # the platform's methods do not change: asked once
        methods = multiprocessing.get_all_start_methods()
        _default_method.append("forkserver" if "forkserver" in methods else "spawn")
    return _default_method[0]


def mp_context() -> Any:
    """The multiprocessing context of the run being set up (or the default one).

    ``setup()`` should create its Manager and other multiprocessing objects
    from this, so they match the run's start method.
    """
    if _active_context:
        return _active_context[-1]
    return multiprocessing.get_context(default_start_method())


def normalize_tasks(tasks: Tasks) -> Tuple[List[str], List[Callable]]:
    if isinstance(tasks, (dict, Mapping)):
        items = list(tasks.items())
    elif isinstance(tasks, (list, tuple)):
        items = [(f"t{i}", t) for i, t in enumerate(tasks)]
    else:
        raise TaskError(f"tasks must be a dict of name -> callable or a list of callables, not {tasks!r}")
    if not items:
        raise TaskError("tasks is empty: give at least one task")
    for name, target in items:
        if not isinstance(name, str) or not name or ":" in name or name != name.strip():
            raise TaskError(f"task name {name!r} is invalid: use a non-empty string without ':'")
        if not callable(target):
            raise TaskError(f"task {name!r} is {target!r}, which is not callable")
    return [n for n, _ in items], [t for _, t in items]


_registries: List[Any] = []  # the races.primitives modules that keep one
_modules_seen = [-1]


def _forget_earlier_runs() -> None:
    """Ids repeat from run to run, so the primitives' registries of objects made
    outside the harness (``_made``: what setup() did, for the models to start
    from) must not carry objects of an earlier run into this one.

    The registries are looked up again only when modules were imported since."""
    if len(sys.modules) != _modules_seen[0]:
        _registries[:] = [
            module
            for name, module in list(sys.modules.items())
            if name.startswith("races.primitives.") and isinstance(getattr(module, "_made", None), dict)
        ]
        _modules_seen[0] = len(sys.modules)
    for module in _registries:
        made = getattr(module, "_made", None)
        if made:
            made.clear()


def _child_names(schedule: Any, names: List[str]) -> List[str]:
    """Names in a schedule of tasks started from tasks (``main/Process-1``): they
    do not exist before the run, so a step naming one is checked when it comes."""
    found: List[str] = []
    if schedule is None or isinstance(schedule, (str, bytes)) or not hasattr(schedule, "__iter__"):
        return found
    for raw in schedule:
        if isinstance(raw, str):
            task = raw.strip().partition(":")[0].strip()
            if "/" in task and task.split("/", 1)[0] in names and task not in found:
                found.append(task)
    return found


def _check_options(backend: str, start_method: Optional[str], timeout: float) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    if start_method is not None and start_method not in START_METHODS:
        raise ValueError(f"start_method must be one of {', '.join(START_METHODS)}, not {start_method!r}")
    if start_method is not None and start_method not in multiprocessing.get_all_start_methods():
        raise ValueError(f"start method {start_method!r} is not available on {sys.platform}")
    if not timeout or timeout <= 0:
        raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")


def _user_traceback(exc: BaseException) -> str:
    """The traceback of ``exc`` without the harness's own frame on top."""
    return describe_exception(exc.with_traceback(exc.__traceback__.tb_next if exc.__traceback__ else None))[2]


def _check_invariant(invariant: Callable, state: Any) -> Optional[Failure]:
    try:
        outcome = invariant(state)
    except AssertionError as exc:
        text = str(exc) or "assertion failed"
        return Failure("invariant", f"invariant failed: {text}", None, _user_traceback(exc))
    except Exception as exc:  # noqa: BLE001
        info = (type(exc).__name__, str(exc), _user_traceback(exc))
        return Failure("exception", f"invariant raised {info[0]}: {info[1]}", None, info[2])
    if outcome is False:
        name = getattr(invariant, "__qualname__", "invariant")
        return Failure("invariant", f"invariant {name}() returned False")
    return None


_strategy_cache: List[Any] = []


def _strategy_classes() -> Tuple[Any, Any]:
    """``(NonPreemptive, ChoiceSchedule)``, imported once (not at module import:
    the strategies import the core)."""
    if not _strategy_cache:
        from ..strategies import NonPreemptive
        from ..strategies.choices import ChoiceSchedule

        _strategy_cache[:] = [NonPreemptive, ChoiceSchedule]
    return _strategy_cache[0], _strategy_cache[1]


_seeded: Dict[str, Any] = {}


def _seed_random(seed: Any) -> None:
    """``random.seed(f"{seed}")``, cheaper: seeding from a string hashes it
    (sha512) into an int first, so that int is computed once per seed and the
    generator is seeded from it (checked to give the very same state, else the
    state itself is kept and set)."""
    key = f"{seed}"
    how: Any = _seeded.get(key)
    if how is None:
        saved = random.getstate()
        random.seed(key)
        state = random.getstate()
        text = key.encode()
        number = int.from_bytes(text + hashlib.sha512(text).digest(), "big")
        random.seed(number)
        how = (random.seed, number) if random.getstate() == state else (random.setstate, state)
        random.setstate(saved)
        if len(_seeded) > 64:
            _seeded.clear()
        _seeded[key] = how
    how[0](how[1])  # type: ignore[operator]


_sessions: Dict[int, "session"] = {}  # thread ident -> the session it is in


class session:
    """Context manager around many runs made from one thread (an exploration).

    Thread backend: the patches (``time.sleep``, Manager proxies, patch mode
    when ``patch``) stay installed and the thread stays pinned to its CPU (and
    batch-scheduled, see :mod:`affinity`) for the whole block, so each run
    inside finds them in place (reference counts) instead of swapping some
    forty attributes and two CPU masks per run.  Outside the tasks a patched
    function behaves as the original, so keeping them between runs changes
    nothing else.  The caller's ``random`` state is saved once and given back
    at the end of the block (each run still seeds its own).  Other backends:
    nothing."""

    def __init__(self, backend: str = "thread", patch: bool = True) -> None:
        self.active = backend == "thread"
        self.patch = bool(patch)
        self.pinned = affinity.held()

    def __enter__(self) -> "session":
        if self.active:
            patches.install()
            if self.patch:
                patch_mode.install(threads=True)
            self.pinned.__enter__()
            ident = threading.get_ident()
            self.outer = _sessions.get(ident)
            if self.outer is None:
                self.saved_random = random.getstate()
                _sessions[ident] = self
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.active:
            if self.outer is None:
                _sessions.pop(threading.get_ident(), None)
                random.setstate(self.saved_random)
            self.pinned.__exit__(*exc)
            if self.patch:
                patch_mode.uninstall(threads=True)
            patches.uninstall()


def run(
    setup: Callable[[], Any],
    tasks: Tasks,
    invariant: Optional[Callable[[Any], Any]] = None,
    schedule: Optional[Sequence[str]] = None,
    backend: str = "thread",
    start_method: Optional[str] = None,
    timeout: float = 10.0,
    *,
    seed: Union[int, str] = 0,
    max_steps: int = 100_000,
    strategy: Any = None,
    launcher: Any = None,
    teardown: Optional[Callable[[Any], Any]] = None,
    patch: bool = True,
    detect_races: Any = None,
    watch: Any = None,
    granularity: str = "step",
) -> Result:
    """Run ``tasks`` one step at a time under the controller; see the README.

    ``patch=True``: inside the tasks and ``setup()`` the factories of
    ``threading``, ``queue`` and ``multiprocessing`` make controlled objects
    and processes/threads started from a task become tasks (see
    :mod:`races._core.patch_mode`).

    ``detect_races``: False, True (a data race fails the run, kind ``race``) or
    ``"report"`` (races are only listed); see :mod:`races.detect`.  The default
    is False, or ``"report"`` with ``granularity="line"``.  ``watch``:
    directories (or ``lambda state: [...]``) whose files' accesses are checked
    (thread backend); see :mod:`races._core.watch`.

    ``granularity="line"`` (thread backend): every new line of user code is a
    sync point and plain attribute and global accesses are checked by the
    detector; see :mod:`races._core.line_trace`."""
    NonPreemptive, ChoiceSchedule = _strategy_classes()

    names, targets = normalize_tasks(tasks)
    steps: List[schedule_mod.ScheduleStep] = []
    if isinstance(schedule, ChoiceSchedule):  # preemption offsets (races.strategies.schedules())
        if strategy is not None:
            raise ValueError("pass either a ChoiceSchedule as schedule or a strategy, not both")
        strategy = schedule.strategy()
    elif schedule is not None:
        steps = schedule_mod.parse(schedule, names + _child_names(schedule, names))
    _check_options(backend, start_method, timeout)
    line_trace.check_granularity(granularity)
    lines = granularity == "line"
    if lines:
        if backend != "thread":
            raise ValueError("granularity='line' needs backend='thread' (a task process's plain "
                             "objects are its own); use points or Manager objects with backend='process'")
        targets = [line_trace.LineTraced(t) for t in targets]
    if detect_races is None:
        detect_races = "report" if lines else False
    if not callable(setup):
        raise TaskError(f"setup must be a callable returning the shared state, not {setup!r}")
    method = start_method or default_start_method()
    ctx = _contexts.get(method)
    if ctx is None:
        ctx = _contexts[method] = multiprocessing.get_context(method)
    if backend == "process":
        if method != "fork":
            from .launchers import check_picklable

            for name, target in zip(names, targets):
                check_picklable(name, target, method)
    options = {"backend": backend, "start_method": start_method or (method if backend == "process" else None), "seed": seed}
    if lines:
        options["granularity"] = "line"  # a token of a line-granularity run replays only with it

    ids.reset()
    process_children.reset()
    _forget_earlier_runs()
    outer = _sessions.get(threading.get_ident())
    saved_random = random.getstate() if outer is None else None  # a session restores it once, at its end
    _seed_random(seed)
    tracker = patches.ManagerTracker()
    if backend == "thread":
        patches.install()
    if patch:
        patch_mode.install(threads=backend == "thread")
    cpu = affinity.choose()
    mask = affinity.pin(cpu) if backend == "thread" else None
    policy = affinity.batch() if mask is not None else None  # see affinity: one switch per handoff
    _active_context.append(ctx)
    controller: Optional[Controller] = None
    traced = False
    try:
        try:
            with tracker, patch_mode.in_setup():
                state = setup()
        except Exception as exc:
            raise SetupError(f"setup() raised {type(exc).__name__}: {exc}") from exc
        handles: List[TaskHandle]
        spawner: Callable[[str, Any], TaskHandle]
        if backend == "thread":
            handles = [ThreadTask(n, t, state, cpu) for n, t in zip(names, targets)]

            def spawner(name: str, call: Any) -> TaskHandle:
                return ThreadTask(name, line_trace.LineTraced(call) if lines else call, None, cpu)
        else:
            from .launchers import choose_launcher
            from .process_transport import ProcessTask

            launch = launcher or choose_launcher(ctx, state)
            config = {"seed": seed, "cpu": cpu, "patch": patch}
            handles = [
                ProcessTask(n, _watch.wrap(t, watch, state), state, launch, config) for n, t in zip(names, targets)
            ]

            def spawner(name: str, call: Any) -> TaskHandle:
                return ProcessTask(name, call, None, launch, config)
        controller = Controller(
            handles, strategy or NonPreemptive(), schedule_mod.ScheduleDriver(steps), timeout, max_steps
        )
        controller.spawner = spawner
        controller.observers.append(LockOrder(controller.warnings))
        detector = _detect.start(controller, detect_races)
        _watch.start(watch, state)
        if patch and backend == "thread":
            notes = controller.notes
            controller.on_task_end.append(lambda record: patch_mode.task_ended(record, notes))
        controller.inline = backend == "thread"
        if backend == "process":
            # task processes boot in parallel on every core, then all meet on one
            def pin_after_boot() -> None:
                nonlocal mask
                mask = affinity.pin(cpu)

            controller.after_boot = pin_after_boot
        if lines:
            line_trace.acquire(collect=bool(detect_races))
            traced = True
        try:
            failure = controller.run()
            if failure is None and invariant is not None:
                failure = _check_invariant(invariant, state)
            failure = _detect.finish(detector, detect_races, failure, controller.warnings)
        finally:
            if teardown is not None:
                teardown(state)
    finally:
        if traced:
            line_trace.release()
        affinity.unbatch(policy)
        affinity.restore(mask)
        _active_context.pop()
        tracker.shutdown_all()
        if patch:
            if backend == "thread":
                patch_mode.shutdown_task_managers()
            patch_mode.uninstall(threads=backend == "thread")
        if backend == "thread":
            patches.uninstall()
        _watch.stop()
        if saved_random is not None:
            random.setstate(saved_random)
    trace = controller.trace
    choices = controller.choices
    values = controller.values

    def token() -> str:  # most runs of an exploration never show theirs
        fp = token_mod.fingerprint(names, [(e.task, e.name) for e in trace])
        return token_mod.encode(token_mod.merge(choices, values), fp)

    result = Result(
        failure,
        trace,
        token,
        controller.task_names,
        schedule,
        controller.warnings,
        controller.notes,
        options,
    )
    result.races = list(detector.races) if detector is not None else []
    controller.dispose()
    return result


def replay(
    token: str,
    setup: Callable[[], Any],
    tasks: Tasks,
    invariant: Optional[Callable[[Any], Any]] = None,
    **options: Any,
) -> Result:
    """Re-run exactly the interleaving ``token`` records; raise :class:`ReplayError`
    when the tasks or their sync points no longer match it."""
    from ..strategies import Replay

    choices, fp = token_mod.decode(token)
    if "schedule" in options:
        raise ReplayError("replay takes a token instead of a schedule; pass one or the other")
    names, _ = normalize_tasks(tasks)
    strategy = Replay(choices, names)
    result = run(setup, tasks, invariant, strategy=strategy, **options)
    actual = token_mod.fingerprint(names, [(e.task, e.name) for e in result.trace])
    if actual != fp or strategy.position != len(choices):
        raise ReplayError(
            f"token {token!r} does not match these tasks: the replayed run passed different "
            f"sync points (fingerprint {actual}, token {fp}; {strategy.position} of "
            f"{len(choices)} choices used). Were the tasks or their points changed?"
        )
    return result


def task_names(tasks: Tasks) -> List[str]:
    return normalize_tasks(tasks)[0]


__all__: List[str] = ["run", "replay", "mp_context", "default_start_method", "Dict"]
