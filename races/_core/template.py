"""A warm template process that forks task processes on demand.

Starting a process with spawn costs ~60 ms here and with forkserver ~6 ms,
while a fork of a small single-threaded process costs well under 1 ms.  So
for spawn and forkserver runs the harness starts one *template* per start
method with that start method (a fresh interpreter, exactly what the user
asked for), and every task process is an ``os.fork`` of it.  The template
never runs user code: it imports the harness's task-side modules once (a
spawned task imports them too, to unpickle its entry point) and the modules
a task needs (as a spawned child would on unpickling), and forks, so every
task still starts from freshly imported modules.  A forked task gets the
default signal handlers a spawned child starts with.

One request forks every task of a run (:meth:`TemplateLauncher.flush`): the
controller sends the tasks' pickled payloads (target, state, config) and
one end of a socket per task in a single message; a child finds its payload
in the memory it was forked with and unpickles it itself.  The controller
learns that a task exited from a ``pidfd`` (no request); the template reaps
its children as soon as they exit (``SIGCHLD``) and reports an exit code on
request, which only a crash needs.  The template exits when the
controller's end of its socket closes, so it never outlives the test
process; :func:`shutdown` stops it explicitly.  Like the forkserver, it is a
service process, not a task: :func:`service_pids` lists it for leak checks.
"""
from __future__ import annotations

import array
import atexit
import importlib
import os
import pickle
import select
import signal
import socket
import struct
import sys
import threading
import time
from multiprocessing.reduction import ForkingPickler
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

REQUEST_TIMEOUT = 10.0
# the harness's own modules a task process imports (a spawned task imports
# them to unpickle its entry point): imported once, in the template
TASK_SIDE_MODULES = ("races._core.worker", "races._core.patch_mode", "races._core.affinity")
_MAX_FDS = 200  # descriptors per message (the kernel's limit is 253)
_HEADER = struct.Struct("!I")


# -- the template's socket: length-prefixed pickles, with descriptors ----------

def send_msg(sock: socket.socket, message: Any, fds: Sequence[int] = ()) -> None:
    data = pickle.dumps(message, pickle.HIGHEST_PROTOCOL)
    data = _HEADER.pack(len(data)) + data
    if fds:
        sent = sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
        data = data[sent:]
    if data:
        sock.sendall(data)


def recv_msg(sock: socket.socket, max_fds: int = 0, timeout: Optional[float] = None) -> Tuple[Any, List[int]]:
    """The next message and the descriptors that came with it.  EOFError when
    the other end closed, TimeoutError when nothing came within ``timeout``."""
    if timeout is not None and not _wait_readable(sock.fileno(), timeout):
        raise TimeoutError
    fds: List[int] = []
    if max_fds:
        data, ancdata, _, _ = sock.recvmsg(1 << 16, socket.CMSG_SPACE(max_fds * array.array("i").itemsize))
        for level, kind, cdata in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                got = array.array("i")
                got.frombytes(cdata[: len(cdata) - (len(cdata) % got.itemsize)])
                fds.extend(got)
    else:
        data = sock.recv(1 << 16)
    if not data:
        raise EOFError
    while len(data) < 4 or len(data) < 4 + _HEADER.unpack_from(data)[0]:
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise EOFError
        data += chunk
    return pickle.loads(memoryview(data)[4:]), fds


def _wait_readable(fd: int, timeout: float) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(max(0, int(timeout * 1000))))


# -- inside the template -------------------------------------------------------

def _template_main(sock: socket.socket) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # ^C is for the test process
    for module in TASK_SIDE_MODULES:
        importlib.import_module(module)
    # SIGCHLD wakes the loop (a handler of our own, so that the wakeup fd is
    # written), which reaps at once: a task's exit leaves no zombie behind
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    poller.register(wake_r, select.POLLIN)
    statuses: Dict[int, int] = {}
    while True:
        ready = [fd for fd, _ in poller.poll()]
        if wake_r in ready:
            try:
                while os.read(wake_r, 512):
                    pass
            except BlockingIOError:
                pass
            _reap(statuses)
        if sock.fileno() not in ready:
            continue
        try:
            request, fds = recv_msg(sock, _MAX_FDS)
        except (EOFError, OSError):
            break
        op = request[0]
        if op == "fork":
            _, path, modules, specs = request
            sys.path[:] = path
            for module in modules:
                if module not in sys.modules:
                    try:
                        importlib.import_module(module)
                    except BaseException:  # noqa: BLE001 - the task reports it
                        pass
            pids = []
            for i, ((name, payload), fd) in enumerate(zip(specs, fds)):
                pid = os.fork()
                if pid == 0:
                    sock.close()
                    _task_main(fd, name, payload, (wake_r, wake_w, *fds[i + 1:]))
                os.close(fd)
                statuses.pop(pid, None)  # a recycled pid
                pids.append(pid)
            send_msg(sock, pids)
        elif op == "wait":
            _, pid, timeout = request
            send_msg(sock, _wait(pid, timeout, statuses))
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    while True:  # reap whatever is left
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            break


def _reap(statuses: Dict[int, int]) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        statuses[pid] = os.waitstatus_to_exitcode(status)
        if len(statuses) > 4096:  # codes nobody asked for (a task asked about is asked at once)
            del statuses[next(iter(statuses))]


def _wait(pid: int, timeout: float, statuses: Dict[int, int]) -> Optional[int]:
    deadline = time.monotonic() + timeout
    while True:
        if pid in statuses:
            return statuses.pop(pid)
        try:
            got, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return statuses.pop(pid, None)
        if got == pid:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.001)


def _task_main(fd: int, name: str, payload: bytes, closing: Tuple[int, ...]) -> None:
    code = 0
    try:
        # a spawned or forkserver child starts with the default handlers
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for other in closing:
            os.close(other)
        try:
            target, state, config = pickle.loads(payload)
        except BaseException as exc:  # noqa: BLE001 - report why the task cannot start
            from .thread_transport import describe_exception
            from .wire import Wire

            kind, message, tb = describe_exception(exc)
            Wire(fd).send(("error", (kind, f"the task could not be started in its process: {message}", tb)))
            code = 1
        else:
            del payload
            from .worker import process_main

            process_main(fd, name, target, state, config)
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

_pidfd_open = getattr(os, "pidfd_open", None)
_pidfd_send_signal = getattr(signal, "pidfd_send_signal", None)


class TemplateProcess:
    """A task process forked by the template (not our child: the template reaps
    it).  ``pending`` until its launcher's :meth:`~TemplateLauncher.flush`."""

    def __init__(self, launcher: "TemplateLauncher", template: "Template") -> None:
        self.launcher = launcher
        self.template = template
        self.pending = True
        self.pid: Optional[int] = None
        self.code: Optional[int] = None
        self.sentinel: Optional[int] = None  # a pidfd, readable once the process exited

    def _started(self, pid: int) -> None:
        self.pending = False
        self.pid = pid
        if _pidfd_open is not None:
            try:
                self.sentinel = _pidfd_open(pid)
            except OSError:
                self.sentinel = None

    def ready(self) -> None:
        if self.pending:
            self.launcher.flush()

    def cancel(self) -> None:
        self.launcher.cancel(self)

    def alive(self) -> bool:
        self.ready()
        if self.code is not None or self.pid is None:
            return False
        if self.sentinel is not None:
            return not _wait_readable(self.sentinel, 0)
        return not self.wait_exit(0.0)

    def wait_exit(self, timeout: float) -> bool:
        self.ready()
        if self.code is not None:
            return True
        if self.sentinel is not None:
            return _wait_readable(self.sentinel, timeout)
        self.code = self.template.wait(self.pid, timeout)  # type: ignore[arg-type]
        return self.code is not None

    def exit_code(self, timeout: float) -> Optional[int]:
        if not self.wait_exit(timeout):
            return None
        if self.code is None:
            self.code = self.template.wait(self.pid, timeout)  # type: ignore[arg-type]
        return self.code

    def signal(self, signum: int) -> None:
        self.ready()
        if self.sentinel is not None and _pidfd_send_signal is not None:
            _pidfd_send_signal(self.sentinel, signum)  # never a recycled pid
        else:
            os.kill(self.pid, signum)  # type: ignore[arg-type]

    def kill(self) -> None:
        try:
            self.signal(signal.SIGKILL)
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
        self.sock, child = socket.socketpair()
        self.process = ctx.Process(target=_template_main, args=(child,), name="races-template", daemon=True)
        try:
            self.process.start()
        finally:
            child.close()

    def _request(self, message: tuple, fds: Sequence[int] = ()) -> Any:
        with self.lock:
            send_msg(self.sock, message, fds)
            try:
                return recv_msg(self.sock, timeout=REQUEST_TIMEOUT)[0]
            except TimeoutError:
                raise RuntimeError(f"the races template process (pid {self.process.pid}) did not answer") from None
            except EOFError:
                raise RuntimeError(f"the races template process (pid {self.process.pid}) has exited") from None

    def fork(self, modules: List[str], specs: List[Tuple[str, bytes]], fds: List[int]) -> List[int]:
        """Fork one task per ``(name, payload)``, each given its descriptor."""
        pids: List[int] = []
        for i in range(0, len(specs), _MAX_FDS):
            pids += self._request(("fork", list(sys.path), modules, specs[i:i + _MAX_FDS]), fds[i:i + _MAX_FDS])
        return pids

    def wait(self, pid: int, timeout: float) -> Optional[int]:
        """``pid``'s exit code, waiting up to ``timeout`` for it to exit (None if it did not)."""
        return self._request(("wait", pid, timeout))

    def alive(self) -> bool:
        return self.process.is_alive()

    def stop(self) -> None:
        try:
            self.sock.close()
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
    """Fork tasks from the template of ``ctx``'s start method.

    :meth:`launch` only prepares a task (its socket and pickled payload); the
    first wait for any task of the run makes one request that forks every
    task launched so far (:meth:`flush`)."""

    def __init__(self, ctx: Any, state_modules: List[str]) -> None:
        self.ctx = ctx
        self.method = ctx.get_start_method()
        self.state_modules = state_modules
        self._pending: List[Tuple[TemplateProcess, str, bytes, socket.socket, List[str]]] = []

    def launch(self, name: str, target: Callable, state: Any, config: dict) -> Tuple[Any, TemplateProcess]:
        template = get_template(self.ctx)
        payload = bytes(ForkingPickler.dumps((target, state, config)))
        modules = [m for m in [_module_of(target), *self.state_modules] if m and m != "__main__"]
        parent, child = socket.socketpair()
        proc = TemplateProcess(self, template)
        self._pending.append((proc, name, payload, child, modules))
        return parent, proc

    def flush(self) -> None:
        """Fork every pending task, in one request per template."""
        pending, self._pending = self._pending, []
        while pending:
            template = pending[0][0].template
            batch = [p for p in pending if p[0].template is template]
            pending = [p for p in pending if p[0].template is not template]
            modules: List[str] = []
            for *_, mods in batch:
                modules += [m for m in mods if m not in modules]
            try:
                pids = template.fork(modules, [(name, payload) for _, name, payload, _, _ in batch],
                                     [child.fileno() for *_, child, _ in batch])
            finally:
                for *_, child, _ in batch:
                    child.close()
            for (proc, *_), pid in zip(batch, pids):
                proc._started(pid)

    def cancel(self, proc: TemplateProcess) -> None:
        for item in [p for p in self._pending if p[0] is proc]:
            self._pending.remove(item)
            item[3].close()
        proc.pending = False

