"""The heavier half of the pytest plugin, imported only when a test uses it:
the ``races`` fixture object and the leak check.

:class:`RacesFixture` calls ``races.run`` / ``races.explore`` / ``races.check``
/ ``races.replay`` with the test's defaults, remembers every Result and gives
it the pytest command line that replays it.  :class:`LeakGuard` notes the
child processes and threads that exist before a test and, after it, kills and
reports the ones the test left behind.
"""
from __future__ import annotations

import inspect
import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from . import plugin

# multiprocessing's own helper processes, and the harness's warm template
# process: long-lived by design, never a leak
EXEMPT_CMDLINES = (
    "from multiprocessing.forkserver import main",
    "from multiprocessing.resource_tracker import main",
    "races-template",
)
# threads of test-runner plugins (pytest-timeout's timer, pytest-rerunfailures'
# status server, xdist/execnet), which may start while a test runs pytest itself
EXEMPT_THREAD_MODULES = ("pytest_timeout", "pytest_rerunfailures", "xdist", "execnet", "_pytest")
GRACE = 2.0  # seconds a leftover gets to finish by itself (threads and processes together)
RUN_ONLY = ("schedule", "timeout", "max_steps", "launcher", "teardown")
EXPLORE_ONLY = ("max_schedules", "preemption_bound", "stop_on_first", "shard")


def _lib() -> Any:
    import races

    return races


def _params(func: Callable) -> tuple[set[str], bool]:
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return set(), True
    names = {p.name for p in sig.parameters.values() if p.kind is not p.VAR_KEYWORD}
    var_kw = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    return names, var_kw


def _accepts(func: Callable, name: str, kind: str) -> bool:
    """Whether ``func`` takes keyword ``name``.  ``races.replay`` hands its options
    to ``races.run``; otherwise a ``**kwargs`` catch-all counts for what
    ``races.explore`` or ``races.run`` take (that is where it ends up)."""
    lib = _lib()
    if kind == "replay":
        func = lib.run
    names, var_kw = _params(func)
    if name in names:
        return True
    if not var_kw or kind in ("run", "replay"):
        return var_kw
    for inner in (getattr(lib, "explore", None), lib.run):
        if inner is not None and inner is not func:
            inner_names, _ = _params(inner)
            if name in inner_names:
                return True
    return False


def rerun_warning(item: pytest.Item) -> str | None:
    """Why this run of ``item`` is a retry (pytest-rerunfailures, pytest-repeat), or None."""
    count = getattr(item, "execution_count", None)
    if isinstance(count, int) and count > 1:
        return f"attempt {count} by pytest-rerunfailures"
    callspec = getattr(item, "callspec", None)
    step = callspec.params.get("__pytest_repeat_step_number") if callspec is not None else None
    if isinstance(step, int) and step > 0:
        return "a repetition by pytest-repeat"
    return None


class RacesFixture:
    """What the ``races`` fixture gives a test.

    ``run``, ``explore``, ``check`` and ``replay`` take the arguments of the
    functions of the same name in :mod:`races`; the test's seed and options
    (``@pytest.mark.races(...)``, ``--races-*``, ini) are defaults, and an
    explicit keyword always wins.  With ``--races-replay TOKEN`` the first three
    replay TOKEN instead.  ``last`` is the last Result, ``results`` all of them.
    """

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self._request = request
        self.item = request.node
        self.config = request.config
        self.nodeid: str = request.node.nodeid
        self.seed = plugin.resolve_seed(self.config)
        self.replay_token = plugin.replay_token(self.config)
        self.marker = plugin.marker_options(self.item)
        self.options: dict[str, Any] = {**plugin.default_options(self.config), **self.marker}
        self.results: list[Any] = []
        why = rerun_warning(self.item)
        if why is not None:
            warnings.warn(
                pytest.PytestWarning(
                    f"{self.nodeid} uses the races fixture and is being run again ({why}). "
                    "races runs are deterministic: retrying a failure until it passes hides it. "
                    "Fix it, or replay it with the command in the test's races report section."
                ),
                stacklevel=2,
            )

    # -- what the test sees ---------------------------------------------------
    @property
    def shard(self) -> tuple[int, int]:
        """``(worker_index, worker_count)`` under pytest-xdist, else ``(0, 1)``."""
        return plugin._shard_from_env()

    @property
    def tmp_path(self) -> Path:
        """This test's own temporary directory (unique per xdist worker and test)."""
        path: Path = self._request.getfixturevalue("tmp_path")
        return path

    @property
    def last(self) -> Any:
        return self.results[-1] if self.results else None

    @property
    def last_failed(self) -> Any:
        for result in reversed(self.results):
            if result.failed:
                return result
        return None

    def run(self, setup: Callable[[], Any], tasks: Any, invariant: Callable | None = None,
            **options: Any) -> Any:
        """``races.run`` with the test's defaults (or ``races.replay`` with --races-replay)."""
        if self.replay_token:
            return self._replay(self.replay_token, setup, tasks, invariant, options)
        func = _lib().run
        return self._record(func(setup, tasks, invariant, **self._options(func, options, "run")))

    def explore(self, setup: Callable[[], Any], tasks: Any, invariant: Callable | None = None,
                **options: Any) -> Any:
        """``races.explore`` with the test's defaults (max_schedules, strategy,
        preemption_bound, shard when the marker says ``shard=True``...)."""
        if self.replay_token:
            return self._replay(self.replay_token, setup, tasks, invariant, options)
        func = getattr(_lib(), "explore", None)
        if func is None:
            raise NotImplementedError(
                "races.explore is not available in this version of races: the races fixture cannot "
                "explore schedules yet; use races.run(setup, tasks, invariant, schedule=[...]) instead"
            )
        return self._record(func(setup, tasks, invariant, **self._options(func, options, "explore")))

    def check(self, setup: Callable[[], Any], tasks: Any, invariant: Callable | None = None,
              **options: Any) -> Any:
        """Explore (or replay) and raise an AssertionError carrying the report when a
        schedule fails; return the Result otherwise."""
        lib = _lib()
        if self.replay_token:
            result = self._replay(self.replay_token, setup, tasks, invariant, options)
        elif getattr(lib, "check", None) is not None:
            func = lib.check
            try:
                result = func(setup, tasks, invariant, **self._options(func, options, "explore"))
            except AssertionError as exc:
                found = getattr(exc, "result", None)
                if found is None or not hasattr(found, "report"):
                    raise
                self._record(found)
                # the same failure, its report now ending with the pytest replay command
                raise self._failure(found, type(exc)) from None
            if result is not None and hasattr(result, "failed"):
                self._record(result)
            return result
        elif getattr(lib, "explore", None) is not None:
            result = self.explore(setup, tasks, invariant, **options)
        else:
            needs = sorted(k for k in options if k in EXPLORE_ONLY)
            if needs:
                raise NotImplementedError(
                    f"races.check(..., {', '.join(needs)}=...) needs races.explore, which this version "
                    "of races does not have; without those options check() runs one schedule"
                )
            result = self.run(setup, tasks, invariant, **options)
        if result.failed:
            raise self._failure(result)
        return result

    def replay(self, token: str, setup: Callable[[], Any], tasks: Any,
               invariant: Callable | None = None, **options: Any) -> Any:
        """``races.replay`` with the test's backend and seed as defaults."""
        return self._replay(token, setup, tasks, invariant, options)

    def replay_command(self, token: str) -> str:
        """The shell command that replays ``token`` in this test."""
        path, sep, rest = self.nodeid.partition("::")
        target = self.nodeid
        try:
            full = Path(self.config.rootpath, path)
            rel = os.path.relpath(full, self.config.invocation_params.dir)
            if not rel.startswith(".."):
                target = rel.replace(os.sep, "/") + sep + rest
            else:
                target = str(full) + sep + rest
        except ValueError:
            pass
        args = ["pytest", target, "--races-replay", token]
        if self.seed != 0:
            args += ["--races-seed", str(self.seed)]
        for name in ("backend", "start_method"):
            value = self.config.getoption(f"races_{name}", None)
            if value is not None:
                args += [f"--races-{name.replace('_', '-')}", value]
        return " ".join(shlex.quote(a) for a in args)

    def section_text(self) -> str | None:
        """The report section of a failed test: the last failed Result, else the last one."""
        result = self.last_failed or self.last
        if result is None:
            return None
        text: str = result.report()
        if len(self.results) > 1:
            which = self.results.index(result) + 1
            text = f"(run {which} of {len(self.results)} in this test)\n" + text
        return text

    # -- helpers ----------------------------------------------------------------
    def _options(self, func: Callable, explicit: dict[str, Any], kind: str) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        defaults = dict(self.options)
        defaults.setdefault("seed", self.seed)
        for key, value in defaults.items():
            if value is None:
                continue
            if key == "shard":
                if value is True and kind == "explore":  # asked for: pass it even if unknown
                    merged["shard"] = self.shard
                continue
            if key == "strategy" and kind in ("run", "replay") and isinstance(value, str):
                continue  # a named exploration strategy; run takes a Strategy object
            if kind in ("run", "replay") and key in EXPLORE_ONLY:
                continue
            if kind == "replay" and key == "strategy":
                continue
            if _accepts(func, key, kind):
                merged[key] = value
            elif key == "detect_races" and value:
                raise NotImplementedError(
                    f"detect_races=True was asked (by the races marker) but races."
                    f"{getattr(func, '__name__', kind)} of this version of races does not take it"
                )
        merged.update(explicit)
        if kind == "replay":
            merged.pop("schedule", None)
        return merged

    def _replay(self, token: str, setup: Callable[[], Any], tasks: Any,
                invariant: Callable | None, options: dict[str, Any]) -> Any:
        func = _lib().replay
        explicit = {k: v for k, v in options.items() if k not in EXPLORE_ONLY and k != "strategy"}
        return self._record(func(token, setup, tasks, invariant, **self._options(func, explicit, "replay")))

    def _record(self, result: Any) -> Any:
        if getattr(result, "token", None):
            try:
                result.replay_command = self.replay_command(result.token)
            except AttributeError:
                pass
        self.results.append(result)
        return result

    def _failure(self, result: Any, cls: type | None = None) -> AssertionError:
        """``races.ScheduleFailure`` (or ``cls``) for ``result``; its message is the report."""
        if cls is None:
            cls = getattr(_lib(), "ScheduleFailure", AssertionError)
        text = result.report()
        exc: AssertionError | None = None
        if cls is not AssertionError:
            for arg in (result, text):  # ScheduleFailure(result), or an exception taking a message
                try:
                    made = cls(arg)
                except Exception:  # noqa: BLE001, S112 - try the other form
                    continue
                if isinstance(made, AssertionError) and str(made) == text:
                    exc = made
                    break
        if exc is None:
            exc = AssertionError(text)
        try:
            exc.result = result  # type: ignore[attr-defined]
        except AttributeError:
            pass
        return exc


# -- leak check -------------------------------------------------------------------
def _exempt(cmdline: Sequence[str]) -> bool:
    text = " ".join(cmdline)
    return any(marker in text for marker in EXEMPT_CMDLINES)


# engine modules that keep long-lived service processes (warm templates, the shared
# Manager) and list them with ``service_pids()``
SERVICE_MODULES = ("races._core.template", "races._core.shared_manager")


def _service_pids() -> set[int]:
    """Pids of the harness's service processes, when the engine has started any."""
    pids: set[int] = set()
    for name in SERVICE_MODULES:
        lister = getattr(sys.modules.get(name), "service_pids", None)
        if lister is None:
            continue
        try:
            pids.update(lister())
        except Exception:  # noqa: BLE001, S112 - a leak check must not crash on the engine's state
            continue
    return pids


def _service_threads() -> list[threading.Thread]:
    """The harness's parked task threads (its thread pool), when it has any."""
    lister = getattr(sys.modules.get("races._core.thread_transport"), "idle_threads", None)
    try:
        return list(lister()) if lister is not None else []
    except Exception:  # noqa: BLE001 - a leak check must not crash on the engine's state
        return []


def _thread_exempt(thread: threading.Thread) -> bool:
    if thread is threading.main_thread() or not thread.is_alive():
        return True
    if thread in _service_threads():
        return True  # a parked worker of races's thread pool: a service, like the template
    if isinstance(thread, threading._DummyThread):  # type: ignore[attr-defined]
        return True  # a foreign thread that once called threading.current_thread()
    if thread.name.startswith("pytest_timeout "):
        return True
    target = getattr(thread, "_target", None) or getattr(thread, "function", None)
    module = getattr(target, "__module__", None) or ""
    return module.split(".")[0] in EXEMPT_THREAD_MODULES


def _py_spy() -> str | None:
    found = shutil.which("py-spy")
    if found:
        return found
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else None


def _process_stack(pid: int) -> str:
    exe = _py_spy()
    if exe is None:
        return "    (no py-spy: install it to see the stack of a leftover process)"
    try:
        out = subprocess.run(
            [exe, "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"    (py-spy failed: {exc})"
    text = (out.stdout or out.stderr).strip()
    return "\n".join("    " + line for line in text.splitlines()) if text else "    (py-spy: no output)"


def _thread_stack(thread: threading.Thread) -> str:
    frame = sys._current_frames().get(thread.ident or -1)
    if frame is None:
        return "    (no stack)"
    return "".join("    " + line for line in traceback.format_stack(frame)).rstrip()


def _stop_thread(thread: threading.Thread) -> bool:
    """Ask ``thread`` to exit by raising SystemExit in it (delivered when it next
    runs Python code: a thread blocked in C stays)."""
    import ctypes

    if thread.ident is None:
        return False
    set_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc
    set_exc.argtypes = (ctypes.c_ulong, ctypes.py_object)
    return bool(set_exc(thread.ident, SystemExit) == 1)


class LeakGuard:
    """Notes the child processes and threads before a test; :meth:`finish`
    fails the test when others are left after it (killing them)."""

    def __init__(self, item: pytest.Item) -> None:
        import psutil

        self.item = item
        self._psutil = psutil
        self.me = psutil.Process()
        self.known_procs: set[tuple[int, float]] = set()
        for p in self._children():
            try:
                self.known_procs.add((p.pid, p.create_time()))
            except psutil.Error:
                pass
        self.known_threads = set(threading.enumerate())
        self.reaped: list[str] = []

    # -- looking ------------------------------------------------------------
    def _children(self) -> list[Any]:
        try:
            return list(self.me.children(recursive=True))
        except self._psutil.Error:
            return []

    def new_processes(self) -> list[tuple[Any, list[str]]]:
        """Live processes started during the test: children of this process, of
        the forkserver or template, or of another such new process."""
        psutil = self._psutil
        services = _service_pids()
        cmds: dict[int, list[str]] = {}
        info: dict[int, tuple[Any, int, bool, bool, bool]] = {}
        for p in self._children():
            try:
                with p.oneshot():
                    key = (p.pid, p.create_time())
                    zombie = p.status() == psutil.STATUS_ZOMBIE
                    ppid = p.ppid()
                    cmd = [] if zombie else p.cmdline()
            except psutil.Error:
                continue
            cmds[p.pid] = cmd
            service = p.pid in services or _exempt(cmd)
            info[p.pid] = (p, ppid, service, key in self.known_procs, zombie)

        def counts(pid: int, depth: int = 0) -> bool:
            _, ppid, service, known, zombie = info[pid]
            if known or zombie or service or depth > 64:
                return False
            if ppid == self.me.pid:
                return True
            parent = info.get(ppid)
            if parent is None:
                return False
            return parent[2] or counts(ppid, depth + 1)

        return [(info[pid][0], cmds[pid]) for pid in info if counts(pid)]

    def new_threads(self) -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t not in self.known_threads and not _thread_exempt(t)]

    # -- acting ---------------------------------------------------------------
    def _alive(self, proc: Any) -> bool:
        try:
            return bool(proc.status() != self._psutil.STATUS_ZOMBIE)
        except self._psutil.Error:
            return False

    def _wait_gone(self, procs: list[Any], deadline: float) -> list[Any]:
        """Poll (bounded by ``deadline``) until ``procs`` have exited; return the live ones."""
        alive = [p for p in procs if self._alive(p)]
        while alive and time.monotonic() < deadline:
            time.sleep(0.02)
            alive = [p for p in alive if self._alive(p)]
        return alive

    @staticmethod
    def _reap_zombies() -> None:
        mp = sys.modules.get("multiprocessing")
        if mp is not None:
            mp.active_children()  # joins the finished multiprocessing children

    def _kill(self, procs: list[tuple[Any, list[str]]]) -> list[str]:
        lines = []
        for proc, cmd in procs:
            lines.append(f"  process {proc.pid}: {shlex.join(cmd) if cmd else '?'}")
            lines.append(_process_stack(proc.pid))
        for proc, _ in procs:
            try:
                proc.kill()
            except self._psutil.Error:
                pass
        self._wait_gone([p for p, _ in procs], time.monotonic() + GRACE)
        self._reap_zombies()
        return lines

    def reap(self, reason: str) -> str:
        """Kill at once every process the test started (after dumping its stack)."""
        self._reap_zombies()
        procs = self.new_processes()
        if not procs:
            return ""
        lines = self._kill(procs)
        text = f"{reason}: killed {len(procs)} child process(es) of the test:\n" + "\n".join(lines)
        self.reaped.append(text)
        return text

    def finish(self) -> None:
        """After the test's teardown: give leftovers a bounded grace, then kill
        them and fail the test naming them."""
        deadline = time.monotonic() + GRACE
        self._reap_zombies()
        threads = self.new_threads()
        procs = self.new_processes()
        if not threads and not procs:
            return
        import gc

        gc.collect()  # finalizers close forgotten queues, pools and their threads
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._wait_gone([p for p, _ in procs], deadline)
        self._reap_zombies()
        threads = self.new_threads()
        procs = self.new_processes()
        if not threads and not procs:
            return
        lines = []
        if procs:
            lines += self._kill(procs)
        for thread in threads:
            lines.append(f"  thread {thread.name!r} (daemon={thread.daemon}, ident={thread.ident})")
            lines.append(_thread_stack(thread))
        stopped = [t for t in threads if _stop_thread(t)]
        deadline = time.monotonic() + GRACE / 4
        for thread in stopped:
            thread.join(max(0.0, deadline - time.monotonic()))
        still = [t.name for t in threads if t.is_alive()]
        what = []
        if procs:
            what.append(f"{len(procs)} child process(es) (killed)")
        if threads:
            what.append(f"{len(threads)} thread(s) (asked to exit)")
        message = f"races leak check: {self.item.nodeid} left {' and '.join(what)} behind:\n" + "\n".join(lines)
        if still:
            message += f"\nthreads still running (blocked in C code?): {', '.join(still)}"
        pytest.fail(message, pytrace=False)
