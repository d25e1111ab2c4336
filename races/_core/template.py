"""A warm template process that forks task processes ahead of need.

Starting a process with spawn costs ~60 ms here and with forkserver ~6 ms,
while a fork of a small single-threaded process costs well under 1 ms.  So
for spawn and forkserver runs the harness starts one *template* per start
method with that start method (a fresh interpreter, exactly what the user
asked for), and every task process is an ``os.fork`` of it.  The template
never runs user code: it imports the harness's task-side modules and
installs its patches once (a spawned task imports them too, to unpickle its
entry point, and patches itself first thing), imports the modules a task
needs (as a spawned child would on unpickling, and with patch mode's
factories suspended, as there) and forks, so every task still starts from
freshly imported modules.  A forked task gets the default signal handlers a
spawned child starts with.

**Idle children.**  Forking, the kernel's copy-on-write faults of a fresh
child and its exit cost more CPU than the rest of a short run, so tasks are
forked ahead of need (:func:`_idle_main`): an idle child prepares what does
not depend on its task and waits on its own socket for its payload.  The controller keeps a *stock* of them (their pids
and its ends of their sockets, see :class:`Template`): a run
(:meth:`TemplateLauncher.flush`: every task launched so far) takes its
children from the stock, sends each its pickled target, state and config,
which the child unpickles itself, and orders more without waiting (two runs'
worth stay in stock or on their way); the template forks them on another
core while the run goes on, and they wait on the runs' core.  Only a short stock makes a
run wait for the template.  When a run needs a module the template has not
imported, the template imports it and the stock forked without it is
discarded (an idle child leaves when its socket closes).  Idle children are
service processes, listed by :func:`service_pids`.

The controller learns that a task exited from a ``pidfd`` (no request); the
template reaps its children as soon as they exit (``SIGCHLD``) and reports
an exit code on request, which only a crash needs.  The template exits when
the controller's end of its socket closes (its idle children with it), so
it never outlives the test process; :func:`shutdown` stops it explicitly.
Like the forkserver, it is a service process, not a task.
"""
from __future__ import annotations

import array
import atexit
import gc
import importlib
import io
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

from .wire import dumps as _wire_dumps

REQUEST_TIMEOUT = 10.0
POOL_MAX = 64  # idle children at most
# idle children kept in stock or on their way: this many runs' worth (fewer
# make a run wait for a fork; bigger batches of forks measured slower)
STOCK_RUNS = 2
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
    the other end closed, TimeoutError when nothing came within ``timeout``.
    Reads exactly one message (its header first, which carries the
    descriptors), so messages sent one after another never mix."""
    if timeout is not None and not _wait_readable(sock.fileno(), timeout):
        raise TimeoutError
    fds: List[int] = []
    if max_fds:
        head, ancdata, _, _ = sock.recvmsg(4, socket.CMSG_SPACE(max_fds * array.array("i").itemsize))
        for level, kind, cdata in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                got = array.array("i")
                got.frombytes(cdata[: len(cdata) - (len(cdata) % got.itemsize)])
                fds.extend(got)
    else:
        head = sock.recv(4)
    if not head:
        raise EOFError
    while len(head) < 4:
        more = sock.recv(4 - len(head))
        if not more:
            raise EOFError
        head += more
    size = _HEADER.unpack(head)[0]
    data = b""
    while len(data) < size:
        chunk = sock.recv(min(size - len(data), 1 << 20))
        if not chunk:
            raise EOFError
        data += chunk
    return pickle.loads(data), fds


def _wait_readable(fd: int, timeout: float) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(max(0, int(timeout * 1000))))


# -- inside the template -------------------------------------------------------

def _template_main(sock: socket.socket) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # ^C is for the test process
    for module in TASK_SIDE_MODULES:
        importlib.import_module(module)
    from . import patch_mode, patches, worker

    patches.install_for_process()
    patch_mode.install_for_process()
    worker.PREPATCHED = True
    # a task seeds the generator from a string, whose hash function Python
    # 3.12+ imports on first use (3 ms in a fresh child): import it here
    import random

    random.seed("races template")
    # a timed-out task's stacks: faulthandler writes them into a memfd that
    # every child inherits (registered once, here); the controller reads
    # what the task wrote, through /proc
    dump = worker.stack_dump({})
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    statuses: Dict[int, int] = {}
    unreaped = 0
    generation = 0  # counts the "import" requests: idle children of an older one are stale
    placed: Optional[set] = None  # the CPUs this process keeps to

    while True:
        # exited children are reaped at every message, and every second
        # while some are left (a child of the template needs no signal handler)
        ready = poller.poll(1000 if unreaped else None)
        unreaped -= _reap(statuses)
        if not ready:
            continue
        try:
            request, _ = recv_msg(sock)
        except (EOFError, OSError):
            break
        op = request[0]
        if op == "refill":  # idle children for the controller's stock
            _, count, cpu, others = request
            if others and others != placed:
                # fork (and let the children prepare) off the core the runs use
                try:
                    os.sched_setaffinity(0, others)
                    placed = others
                except OSError:
                    pass
            # what the template holds is never collected in a child (a
            # collection there would write to every object: copy-on-write faults)
            gc.freeze()
            # every fork right after the other (each fork write-protects this
            # process again: less written between forks, fewer faults here)
            pairs = [socket.socketpair() for _ in range(count)]
            pids = []
            failed = None
            for k, (mine, theirs) in enumerate(pairs):
                try:
                    pid = os.fork()
                except OSError as exc:  # (no more processes): the controller raises it
                    failed = f"the races template process could not fork a task process: {exc}"
                    break
                if pid == 0:
                    sock.close()
                    for j, (other_mine, other_theirs) in enumerate(pairs):
                        other_mine.close()
                        if j != k:
                            other_theirs.close()
                    _idle_main(theirs, dump, cpu, others)
                pids.append(pid)
            unreaped += len(pids)
            for pid in pids:
                statuses.pop(pid, None)  # a recycled pid
            try:
                send_msg(sock, ("stock", generation, pids), [mine.fileno() for mine, _ in pairs[:len(pids)]])
                if failed:
                    send_msg(sock, ("failed", failed))
            except OSError:  # the controller is gone
                break
            finally:
                for mine, theirs in pairs:
                    mine.close()
                    theirs.close()
        elif op == "import":
            _, path, modules = request
            sys.path[:] = path
            _import(modules)
            generation += 1
        elif op in ("wait", "sync"):
            reply = _wait(request[1], request[2], statuses) if op == "wait" else None
            try:
                send_msg(sock, ("reply", reply))
            except OSError:  # the controller is gone
                break
    while True:  # reap whatever is left
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            break


def _import(modules: List[str]) -> bool:
    """Import the modules a task needs, as a spawned child would on unpickling
    (patch mode's factories suspended); True when one was new."""
    from . import patch_mode

    new = False
    with patch_mode.suspended():
        for module in modules:
            if module not in sys.modules:
                new = True
                try:
                    importlib.import_module(module)
                except BaseException:  # noqa: BLE001 - the task reports it
                    pass
    return new


def _reap(statuses: Dict[int, int]) -> int:
    """Reap the children that exited; how many."""
    reaped = 0
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return reaped
        if pid == 0:
            return reaped
        reaped += 1
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


class _Unpickler(pickle.Unpickler):
    """Unpickles a payload as a spawned child would: a module imported on the
    way sees the real ``multiprocessing`` and ``threading`` factories (patch
    mode suspended), as patch mode is installed only after unpickling there."""

    def find_class(self, module: str, name: str) -> Any:
        if module in sys.modules:
            return super().find_class(module, name)
        from . import patch_mode

        with patch_mode.suspended():
            return super().find_class(module, name)


def _idle_main(conn: socket.socket, dump: Any, cpu: Optional[int], others: Optional[set]) -> None:
    """An idle child: prepare what does not depend on the task, wait for the
    payload, then be the task.  EOF instead (the controller discarded it, or
    exited): leave quietly."""
    code = 0
    try:
        # a spawned or forkserver child starts with Python's handler for ^C
        signal.signal(signal.SIGINT, signal.default_int_handler)
        from .wire import Wire
        from .worker import process_main

        fd = conn.detach()
        wire = Wire(fd)
        if cpu is not None and others:
            # the template keeps off the runs' core; its child waits on it (a
            # move from core to core when the task comes would cost ~0.4 ms of
            # the run), and may use every core again only to exit (process_main)
            from . import worker

            worker.AFFINITY = others | {cpu}
            try:
                os.sched_setaffinity(0, {cpu})
            except OSError:
                worker.AFFINITY = None
        try:
            _, name, path, payload = wire.recv()
        except (EOFError, OSError):
            os._exit(0)
        sys.path[:] = path
        try:
            target, state, config = _Unpickler(io.BytesIO(payload)).load()
        except BaseException as exc:  # noqa: BLE001 - report why the task cannot start
            from .thread_transport import describe_exception

            kind, message, tb = describe_exception(exc)
            wire.send(("error", (kind, f"the task could not be started in its process: {message}", tb)))
            code = 1
        else:
            del payload
            try:
                process_main(fd, name, target, state, config, dump)
            finally:
                # its Manager proxies give back the references their
                # unpickling took (their finalizers), as at a spawned child's
                # exit; os._exit below would skip that
                del target, state
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


class TemplateConn:
    """The controller's end of a template task's socket; it exists once the
    task's process does (``ready``)."""

    def __init__(self, proc: "TemplateProcess") -> None:
        self.proc = proc
        self.sock: Optional[socket.socket] = None

    def fileno(self) -> int:
        self.proc.ready()
        if self.sock is None:
            raise OSError(f"task {self.proc.name!r} has no process")
        return self.sock.fileno()

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()


class TemplateProcess:
    """A task process forked by the template (not our child: the template reaps
    it).  ``pending`` until its launcher's :meth:`~TemplateLauncher.flush`."""

    def __init__(self, launcher: "TemplateLauncher", template: "Template", name: str,
                 payload: bytes, modules: List[str]) -> None:
        self.launcher = launcher
        self.template = template
        self.name = name
        self.payload: Optional[bytes] = payload
        self.modules = modules
        self.cpu: Optional[int] = None
        self.conn = TemplateConn(self)
        self.pending = True
        self.pid: Optional[int] = None
        self.code: Optional[int] = None
        self.sentinel: Optional[int] = None  # a pidfd, readable once the process exited

    def _started(self, pid: int, fd: int) -> None:
        self.pending = False
        self.pid = pid
        self.conn.sock = socket.socket(fileno=fd)
        if _pidfd_open is not None:
            try:
                self.sentinel = _pidfd_open(pid)
            except OSError:
                self.sentinel = None
        message = _wire_dumps(("payload", self.name, list(sys.path), self.payload))
        self.payload = None
        try:
            self.conn.sock.sendall(message)
        except OSError:
            pass  # it died: the transport sees the crash

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
        if self.code is not None or self.pid is None:
            return True
        if self.sentinel is not None:
            return _wait_readable(self.sentinel, timeout)
        self.code = self.template.wait(self.pid, timeout)
        return self.code is not None

    def exit_code(self, timeout: float) -> Optional[int]:
        if not self.wait_exit(timeout) or self.pid is None:
            return None
        if self.code is None:
            self.code = self.template.wait(self.pid, timeout)
        return self.code

    def signal(self, signum: int) -> None:
        self.ready()
        if self.sentinel is not None and _pidfd_send_signal is not None:
            _pidfd_send_signal(self.sentinel, signum)  # never a recycled pid
        elif self.pid is not None:
            os.kill(self.pid, signum)

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
    """The controller's side of one template process.

    The controller keeps a *stock* of idle children (pid, its end of the
    child's socket, the template's import generation): a run takes its
    children from the stock and asks the template, without waiting for an
    answer, for as many again, which arrive while the run goes on.  Only
    when the stock is short does a run wait for the template."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.lock = threading.Lock()
        self.sock, child = socket.socketpair()
        self.process = ctx.Process(target=_template_main, args=(child,), name="races-template", daemon=True)
        try:
            self.process.start()
        finally:
            child.close()
        self.stock: List[Tuple[int, int, int]] = []
        self.modules: set = set()  # imported at our request
        self.generation = 0
        self.requested = 0  # idle children of this generation asked for and not received yet

    def _take_in(self, message: Any, fds: List[int]) -> Any:
        """File a stock message; return anything else (a reply)."""
        if message[0] == "stock":
            _, generation, pids = message
            if generation == self.generation:
                self.requested -= len(pids)
            for pid, fd in zip(pids, fds):
                if generation == self.generation:
                    self.stock.append((pid, fd, generation))
                else:  # forked before modules we asked for since: it leaves on EOF
                    os.close(fd)
            return None
        if message[0] == "failed":
            self.requested = 0
            raise RuntimeError(message[1])
        return message

    def _read(self, timeout: Optional[float]) -> Any:
        try:
            message, fds = recv_msg(self.sock, _MAX_FDS, timeout=timeout)
        except TimeoutError:
            raise RuntimeError(f"the races template process (pid {self.process.pid}) did not answer") from None
        except EOFError:
            raise RuntimeError(f"the races template process (pid {self.process.pid}) has exited") from None
        return self._take_in(message, fds)

    def _drain(self) -> None:
        """File the stock messages that already arrived."""
        while _wait_readable(self.sock.fileno(), 0):
            self._read(None)

    def _request(self, message: tuple) -> Any:
        with self.lock:
            send_msg(self.sock, message)
            while True:
                reply = self._read(REQUEST_TIMEOUT)
                if reply is not None:
                    return reply[1]

    def take(self, modules: List[str], count: int, cpu: Optional[int]) -> List[Tuple[int, int]]:
        """``count`` idle children that have ``modules`` imported: their pids
        and our ends of their sockets (see :meth:`order` for ``cpu``)."""
        with self.lock:
            self._drain()
            new = [m for m in modules if m not in self.modules]
            if new:
                send_msg(self.sock, ("import", list(sys.path), new))
                self.modules.update(new)
                self.generation += 1
                self.requested = 0  # what is still coming is stale
                for _, fd, _ in self.stock:
                    os.close(fd)  # the child leaves on EOF
                self.stock.clear()
            short = count - len(self.stock) - self.requested
            if short > 0:
                self._order(short, cpu)
            deadline = time.monotonic() + REQUEST_TIMEOUT
            while len(self.stock) < count:
                self._read(max(0.0, deadline - time.monotonic()))
            given, self.stock = self.stock[:count], self.stock[count:]
            return [(pid, fd) for pid, fd, _ in given]

    def order(self, count: int, cpu: Optional[int]) -> None:
        """Make sure ``count`` idle children are in stock or on their way,
        without waiting.  ``cpu`` is the core the runs use: the template forks
        on the others (those this process may use), and its children wait on
        ``cpu``."""
        with self.lock:
            count = min(count, POOL_MAX) - len(self.stock) - self.requested
            if count > 0:
                self._order(count, cpu)

    def _order(self, count: int, cpu: Optional[int]) -> None:
        others = None
        if cpu is not None and hasattr(os, "sched_getaffinity"):
            others = os.sched_getaffinity(0) - {cpu} or None
        send_msg(self.sock, ("refill", count, cpu, others))
        self.requested += count

    def wait(self, pid: int, timeout: float) -> Optional[int]:
        """``pid``'s exit code, waiting up to ``timeout`` for it to exit (None if it did not)."""
        return self._request(("wait", pid, timeout))

    def idle(self) -> List[int]:
        """The pids of the children waiting for a task (every one ordered so far)."""
        with self.lock:
            send_msg(self.sock, ("sync",))
            while self._read(REQUEST_TIMEOUT) is None:
                pass
            return [pid for pid, _, _ in self.stock]

    def alive(self) -> bool:
        return self.process.is_alive()

    def stop(self) -> None:
        try:
            for _, fd, _ in self.stock:
                os.close(fd)
            self.stock.clear()
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
    """Stop every template process this process started (their idle children with them)."""
    with _templates_lock:
        templates = [t for (m, pid), t in _templates.items() if pid == os.getpid()]
        _templates.clear()
    for template in templates:
        template.stop()


def service_pids() -> List[int]:
    """Pids of the template processes and of their idle children (services,
    like the forkserver)."""
    pids: List[int] = []
    for (_, owner), template in list(_templates.items()):
        if owner == os.getpid() and template.process.pid:
            pids.append(template.process.pid)
            try:
                pids += template.idle()
            except (RuntimeError, OSError):
                pass
    return pids


atexit.register(shutdown)


def _forget_templates_in_child() -> None:
    """A process forked from this one (a ``fork`` task, a Manager server
    started with ``fork``) holds none of its templates' sockets: a template
    and its idle children leave when this process closes its ends, and a
    long-lived child holding copies would keep them waiting (and this
    process's shutdown with them)."""
    global _templates_lock
    _templates_lock = threading.Lock()  # (another thread may have held it at the fork)
    templates = list(_templates.values())
    _templates.clear()
    for template in templates:
        for _, fd, _ in template.stock:
            try:
                os.close(fd)
            except OSError:
                pass
        template.stock = []
        template.sock.close()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_templates_in_child)


def _module_of(obj: Any) -> Optional[str]:
    func = getattr(obj, "func", obj)  # functools.partial
    return getattr(func, "__module__", None) or getattr(type(func), "__module__", None)


class TemplateLauncher:
    """Fork tasks from the template of ``ctx``'s start method.

    :meth:`launch` only pickles a task's payload; the first wait for any task
    of the run makes one request for every task launched so far (:meth:`flush`)."""

    def __init__(self, ctx: Any, state_modules: List[str]) -> None:
        self.ctx = ctx
        self.method = ctx.get_start_method()
        self.state_modules = state_modules
        self._pending: List[TemplateProcess] = []

    def launch(self, name: str, target: Callable, state: Any, config: dict) -> Tuple[Any, TemplateProcess]:
        template = get_template(self.ctx)
        payload = bytes(ForkingPickler.dumps((target, state, config)))
        modules = [m for m in [_module_of(target), *self.state_modules] if m and m != "__main__"]
        proc = TemplateProcess(self, template, name, payload, modules)
        proc.cpu = config.get("cpu")
        self._pending.append(proc)
        return proc.conn, proc

    def flush(self) -> None:
        """Start every pending task: one request per template, then each child's payload."""
        pending, self._pending = self._pending, []
        while pending:
            template = pending[0].template
            batch = [p for p in pending if p.template is template]
            pending = [p for p in pending if p.template is not template]
            modules: List[str] = []
            for proc in batch:
                modules += [m for m in proc.modules if m not in modules]
            try:
                children = template.take(modules, len(batch), batch[0].cpu)
            except BaseException:
                for proc in batch + pending:  # no process will come: they end as crashes
                    proc.pending = False
                raise
            for proc, (pid, fd) in zip(batch, children):
                proc._started(pid, fd)
            # the next runs' children: forked on another core while this run
            # boots and runs (a run never waits for a fork while the template keeps up)
            template.order(STOCK_RUNS * len(batch), batch[0].cpu)

    def cancel(self, proc: TemplateProcess) -> None:
        if proc in self._pending:
            self._pending.remove(proc)
        proc.pending = False
