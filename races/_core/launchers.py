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
from typing import Any, Callable, List, Optional, Tuple

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
        self.conn: Any = None  # our end of the task's pipe

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


def _fork_popen() -> Any:
    from multiprocessing.context import ForkProcess

    return ForkProcess._Popen


_FORK_POPEN = _fork_popen() if hasattr(os, "fork") else None
# popen_fork's child branch as _fork_child repeats it: known up to 3.13
_LEAN_FORK = _FORK_POPEN is not None and sys.version_info < (3, 14)


def _lean_fork_fits(procs: List[DirectProcess]) -> bool:
    """Whether :func:`_fork_all` may start these: ``ForkProcess`` objects that
    ``Process.start`` would start (anything else goes through it, and raises
    what it raises)."""
    from multiprocessing import process as mp_process

    if not _LEAN_FORK or mp_process.current_process()._config.get("daemon"):  # type: ignore[attr-defined]
        return False
    return all(
        type(p.process)._Popen is _FORK_POPEN and p.process._popen is None and not p.process._closed
        and p.process._parent_pid == os.getpid()
        for p in procs
    )


def _fork_all(procs: List[DirectProcess]) -> None:
    """Start fork-method tasks as ``Process.start`` does (``popen_fork``), but
    all forks one right after the other, the parent's bookkeeping after the
    last: each fork write-protects the whole controller again, so whatever
    the controller writes between two forks costs a copy-on-write fault per
    page (about 100 pages and 1 ms here for ``Process.start`` itself).  Each
    child closes the descriptors of the later tasks (and the task ends of the
    earlier ones), which a child started by ``Process.start`` at that point
    would not have had, and runs ``popen_fork``'s child branch."""
    from multiprocessing import popen_fork, util
    from multiprocessing import process as mp_process

    mp_process._cleanup()  # type: ignore[attr-defined]
    util._flush_std_streams()  # type: ignore[attr-defined]
    pipes = [os.pipe() + os.pipe() for _ in procs]  # parent_r, child_w, child_r, parent_w
    pids: List[int] = []
    try:
        for k in range(len(procs)):
            pid = os.fork()
            if pid == 0:
                _fork_child(procs, pipes, k)
            pids.append(pid)
    except OSError as exc:  # (no more processes): the ones forked are tracked below, then it raises
        failed: Optional[BaseException] = exc
    else:
        failed = None
    for proc, fds in zip(procs[len(pids):], pipes[len(pids):]):
        for fd in fds:
            os.close(fd)
        proc.child.close()
        proc.pending = False
    for proc, (parent_r, child_w, child_r, parent_w), pid in zip(procs, pipes, pids):
        os.close(child_w)
        os.close(child_r)
        popen = popen_fork.Popen.__new__(popen_fork.Popen)
        popen.returncode = None
        popen.pid = pid
        popen.sentinel = parent_r
        popen.finalizer = util.Finalize(popen, util.close_fds, (parent_r, parent_w))  # type: ignore[attr-defined]
        process = proc.process
        process._popen = popen
        process._sentinel = parent_r
        del process._target, process._args, process._kwargs
        mp_process._children.add(process)  # type: ignore[attr-defined]
        proc.child.close()
        proc.pending = False
        proc.pid = pid
        proc.sentinel = parent_r
    if failed is not None:
        name = procs[len(pids)].name
        raise TaskError(f"task {name!r} cannot be started with the 'fork' start method: {failed}") from failed


def _fork_child(procs: List[DirectProcess], pipes: List[tuple], k: int) -> None:
    """Task ``k``'s side of :func:`_fork_all`: never returns."""
    code = 1
    try:
        for j, (proc, (parent_r, child_w, child_r, parent_w)) in enumerate(zip(procs, pipes)):
            if j != k:
                os.close(child_w)
                os.close(child_r)
                proc.child.close()
            if j > k:  # not made yet when Process.start forks task k
                os.close(parent_r)
                os.close(parent_w)
                proc.conn.close()
        parent_r, child_w, child_r, parent_w = pipes[k]  # child_w stays open: the parent's sentinel
        if sys.version_info >= (3, 13):  # popen_fork's child branch, as of 3.13
            import atexit
            from multiprocessing import util

            atexit._clear()
            atexit.register(util._exit_function)
        os.close(parent_r)
        os.close(parent_w)
        from .shared_manager import skip_inherited_increfs

        skip_inherited_increfs()
        code = procs[k].process._bootstrap(parent_sentinel=child_r)
    finally:
        if sys.version_info >= (3, 13):
            import atexit

            atexit._run_exitfuncs()
        os._exit(code)


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
        proc.conn = parent
        self._pending.append(proc)
        return parent, proc

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        if self.method == "fork" and _lean_fork_fits(pending):
            _fork_all(pending)
        else:
            for i, proc in enumerate(pending):
                try:
                    proc._start()
                except BaseException:
                    self._pending = pending[i + 1:] + self._pending
                    raise

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
