"""A warm template process that forks task processes on demand.

Starting a process with spawn costs ~60 ms here and with forkserver ~6 ms,
while a fork of a small single-threaded process costs ~1 ms.  So for spawn and
forkserver runs the harness starts one *template* per start method with that
start method (a fresh interpreter, exactly what the user asked for), and every
task process is an ``os.fork`` of it.  The template never runs user code: it
only imports the modules a task needs (as a spawned child would on unpickling)
and forks, so every task still starts from freshly imported modules.

Tasks reach the controller over a socket the controller creates and hands to
the template with ``send_handle``; the payload (target, state, config) is
pickled by the controller and read by the task itself.  The template reaps
its children and reports their exit codes on request.  It exits when the
controller's end of its pipe closes, so it never outlives the test process;
:func:`shutdown` stops it explicitly.  Like the forkserver, it is a service
process, not a task: :func:`service_pids` lists it for leak checks.
"""
from __future__ import annotations

import atexit
import importlib
import os
import pickle
import signal
import sys
import threading
import time
from multiprocessing.connection import Connection
from multiprocessing.reduction import ForkingPickler, recv_handle, send_handle
from typing import Any, Callable, Dict, List, Optional, Tuple

REQUEST_TIMEOUT = 10.0


# -- inside the template -------------------------------------------------------

def _template_main(conn: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    statuses: Dict[int, int] = {}
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            break
        op = request[0]
        if op == "fork":
            _, name, path, modules = request
            fd = recv_handle(conn)
            sys.path[:] = path
            for module in modules:
                if module not in sys.modules:
                    try:
                        importlib.import_module(module)
                    except BaseException:  # noqa: BLE001 - the task reports it
                        pass
            pid = os.fork()
            if pid == 0:
                conn.close()
                _task_main(fd)
            os.close(fd)
            conn.send(pid)
        elif op == "wait":
            _, pid, timeout = request
            conn.send(_wait(pid, timeout, statuses))
    for pid in list(statuses):
        statuses.pop(pid, None)
    while True:  # reap whatever is left
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            break


def _wait(pid: int, timeout: float, statuses: Dict[int, int]) -> Optional[int]:
    if pid in statuses:
        return statuses[pid]
    deadline = time.monotonic() + timeout
    while True:
        try:
            got, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return None
        if got == pid:
            code = os.waitstatus_to_exitcode(status)
            statuses[pid] = code
            return code
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.001)


def _task_main(fd: int) -> None:
    code = 0
    try:
        conn = Connection(fd)
        try:
            target, state, config, name = pickle.loads(conn.recv_bytes())
        except BaseException as exc:  # noqa: BLE001 - report why the task cannot start
            from .thread_transport import describe_exception

            kind, message, tb = describe_exception(exc)
            conn.send(("error", (kind, f"the task could not be started in its process: {message}", tb)))
            code = 1
        else:
            from .worker import process_main

            process_main(conn, name, target, state, config)
    except BaseException:  # noqa: BLE001
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


# -- in the controller's process -------------------------------------------------

class TemplateProcess:
    """A task process forked by the template (not our child: the template reaps it)."""

    def __init__(self, template: "Template", pid: int) -> None:
        self.template = template
        self.pid = pid
        self.code: Optional[int] = None
        self.sentinel: Optional[int] = None
        if hasattr(os, "pidfd_open"):
            try:
                self.sentinel = os.pidfd_open(pid)
            except OSError:
                self.sentinel = None

    def alive(self) -> bool:
        return self.code is None and self.template.wait(self.pid, 0.0) is None

    def wait_exit(self, timeout: float) -> bool:
        if self.code is None:
            self.code = self.template.wait(self.pid, timeout)
        return self.code is not None

    def exit_code(self, timeout: float) -> Optional[int]:
        self.wait_exit(timeout)
        return self.code

    def kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def release(self) -> None:
        if self.sentinel is not None:
            os.close(self.sentinel)
            self.sentinel = None


class Template:
    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.lock = threading.Lock()
        self.conn, child = ctx.Pipe(duplex=True)
        self.process = ctx.Process(target=_template_main, args=(child,), name="races-template", daemon=True)
        self.process.start()
        child.close()

    def _request(self, message: tuple) -> Any:
        self.conn.send(message)
        if not self.conn.poll(REQUEST_TIMEOUT):
            raise RuntimeError(f"the races template process (pid {self.process.pid}) did not answer")
        return self.conn.recv()

    def fork(self, name: str, modules: List[str], child_fd: int) -> int:
        with self.lock:
            self.conn.send(("fork", name, list(sys.path), modules))
            send_handle(self.conn, child_fd, self.process.pid)
            if not self.conn.poll(REQUEST_TIMEOUT):
                raise RuntimeError(f"the races template process (pid {self.process.pid}) did not fork")
            return self.conn.recv()

    def wait(self, pid: int, timeout: float) -> Optional[int]:
        with self.lock:
            return self._request(("wait", pid, timeout))

    def alive(self) -> bool:
        return self.process.is_alive()

    def stop(self) -> None:
        try:
            self.conn.close()
        finally:
            self.process.join(5.0)
            if self.process.is_alive():
                self.process.kill()
                self.process.join(5.0)


_templates: Dict[Tuple[str, int], Template] = {}
_templates_lock = threading.Lock()


def get_template(ctx: Any) -> Template:
    key = (ctx.get_start_method(), os.getpid())
    with _templates_lock:
        template = _templates.get(key)
        if template is None or not template.alive():
            template = _templates[key] = Template(ctx)
        return template


def shutdown() -> None:
    """Stop every template process this process started."""
    with _templates_lock:
        templates = [t for (m, pid), t in _templates.items() if pid == os.getpid()]
        _templates.clear()
    for template in templates:
        template.stop()


def service_pids() -> List[int]:
    """Pids of the template processes (services, like the forkserver)."""
    return [t.process.pid for (m, pid), t in _templates.items() if pid == os.getpid() and t.process.pid]


atexit.register(shutdown)


def _module_of(obj: Any) -> Optional[str]:
    func = getattr(obj, "func", obj)  # functools.partial
    return getattr(func, "__module__", None) or getattr(type(func), "__module__", None)


class TemplateLauncher:
    """Fork tasks from the template of ``ctx``'s start method."""

    def __init__(self, ctx: Any, state_modules: List[str]) -> None:
        self.ctx = ctx
        self.method = ctx.get_start_method()
        self.state_modules = state_modules

    def launch(self, name: str, target: Callable, state: Any, config: dict) -> Tuple[Any, TemplateProcess]:
        template = get_template(self.ctx)
        parent, child = self.ctx.Pipe(duplex=True)
        modules = [m for m in [_module_of(target), *self.state_modules] if m and m != "__main__"]
        try:
            pid = template.fork(name, modules, child.fileno())
        finally:
            child.close()
        parent.send_bytes(bytes(ForkingPickler.dumps((target, state, config, name))))
        return parent, TemplateProcess(template, pid)
