"""How task processes come to exist.

:class:`DirectLauncher` starts each task with ``ctx.Process`` of the chosen
start method: every multiprocessing object pickles (or is inherited) exactly
as it would in the user's own program.  The template launcher in
:mod:`races._core.template` forks tasks from a warm single-threaded process
instead, which is what makes spawn and forkserver runs cheap.
"""
from __future__ import annotations

import os
import pickle
import sys
from multiprocessing.reduction import ForkingPickler
from typing import Any, Callable, Optional, Tuple

from .errors import TaskError
from .worker import process_main


class DirectProcess:
    """A task process started by ``ctx.Process``: ``pending`` until its
    launcher's :meth:`~DirectLauncher.flush` starts it."""

    def __init__(self, launcher: "DirectLauncher", name: str, process: Any, child: Any) -> None:
        self.launcher = launcher
        self.name = name
        self.process = process
        self.child = child  # the task's end of its pipe, ours until it started
        self.pending = True
        self.pid: Optional[int] = None
        self.sentinel: Optional[int] = None

    def _start(self) -> None:
        self.pending = False
        try:
            self.process.start()
        except Exception as exc:
            raise TaskError(
                f"task {self.name!r} cannot be started with the {self.launcher.method!r} start method: "
                f"{type(exc).__name__}: {exc} (is the state returned by setup() picklable?)"
            ) from exc
        finally:
            self.child.close()
        self.pid = self.process.pid
        self.sentinel = self.process.sentinel

    def ready(self) -> None:
        if self.pending:
            self.launcher.flush()

    def cancel(self) -> None:
        self.launcher.cancel(self)

    def signal(self, signum: int) -> None:
        if self.pid is not None:
            os.kill(self.pid, signum)

    def alive(self) -> bool:
        return self.pid is not None and self.process.is_alive()

    def wait_exit(self, timeout: float) -> bool:
        if self.pid is None:
            return True
        self.process.join(timeout)
        return self.process.exitcode is not None

    def exit_code(self, timeout: float) -> Optional[int]:
        if self.pid is None:
            return None
        self.process.join(timeout)
        return self.process.exitcode

    def kill(self) -> None:
        if self.pid is not None:
            self.process.kill()

    def release(self) -> None:
        if self.pid is not None and self.process.exitcode is not None:
            self.process.close()


def check_picklable(name: str, target: Callable, method: str) -> None:
    """Raise :class:`TaskError` naming the task when its target cannot cross to a child."""
    func = getattr(target, "func", target)  # functools.partial
    main = sys.modules.get("__main__")
    if getattr(func, "__module__", None) == "__main__" and not getattr(main, "__file__", None):
        raise TaskError(
            f"task {name!r} is defined in an interactive __main__ (python -c or a REPL), which a "
            f"{method!r} process cannot import: define it in a module, or use start_method='fork'"
        )
    try:
        ForkingPickler.dumps(target)
    except (pickle.PicklingError, AttributeError, TypeError) as exc:
        raise TaskError(
            f"task {name!r} ({getattr(target, '__qualname__', target)!r}) cannot be sent to a "
            f"{method!r} process: {exc}. Define the task function at module level "
            "(not a lambda or a nested function), or use start_method='fork'."
        ) from exc


class DirectLauncher:
    """Start tasks with ``ctx.Process``.  :meth:`launch` only prepares a task;
    the first wait for any task of the run starts every task launched so far
    (:meth:`flush`), one right after the other: under fork, each fork
    write-protects the controller's memory again, so less work between forks
    means fewer copy-on-write faults in the controller."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.method = ctx.get_start_method()
        self._pending: list = []

    def launch(self, name: str, target: Callable, state: Any, config: dict) -> Tuple[Any, DirectProcess]:
        parent, child = self.ctx.Pipe(duplex=True)
        process = self.ctx.Process(
            target=process_main, args=(child, name, target, state, config), name=f"races:{name}"
        )
        proc = DirectProcess(self, name, process, child)
        self._pending.append(proc)
        return parent, proc

    def flush(self) -> None:
        while self._pending:
            self._pending.pop(0)._start()

    def cancel(self, proc: DirectProcess) -> None:
        if proc in self._pending:
            self._pending.remove(proc)
            proc.child.close()
        proc.pending = False


def choose_launcher(ctx: Any, state: Any) -> Any:
    """The launcher for a run: fork starts directly; spawn and forkserver fork
    from a warm template when the state can travel without inheritance (a raw
    ``multiprocessing.Lock`` or shared ``Value`` can only be inherited, so such
    a state falls back to starting every task with ``ctx.Process``)."""
    if ctx.get_start_method() == "fork" or not hasattr(os, "fork"):
        return DirectLauncher(ctx)
    try:
        ForkingPickler.dumps(state)
    except Exception:  # noqa: BLE001 - anything that needs inheritance
        return DirectLauncher(ctx)
    from .template import TemplateLauncher

    modules = sorted({type(v).__module__ for v in _walk(state)} - {"builtins"})
    return TemplateLauncher(ctx, modules)


def _walk(state: Any, depth: int = 2) -> list:
    """The state and its direct members, to know which modules a task will import."""
    out = [state]
    if depth and isinstance(state, dict):
        for v in state.values():
            out.extend(_walk(v, depth - 1))
    elif depth and isinstance(state, (list, tuple)):
        for v in state:
            out.extend(_walk(v, depth - 1))
    elif depth and hasattr(state, "__dict__"):
        for v in vars(state).values():
            out.extend(_walk(v, depth - 1))
    return out
