"""What runs inside a task process: bind the agent, patch, run the target,
report how it ended.  Module level so every start method can import it."""
from __future__ import annotations

import faulthandler
import os
import random
import signal
import sys
from typing import Any, Callable, Optional, Set

from . import patches, process_threads
from .agent import Agent, bind_process
from .errors import TaskAborted
from .process_threads import WireChannel
from .thread_transport import describe_exception, target_location
from .wire import Wire, dumps


# True in a process forked from a template, which installed the patches
# (``patches`` and patch mode) once for all the tasks it forks
PREPATCHED = False
# in a template's child: the CPUs it may use (the controller's), not the template's
AFFINITY: Optional[Set[int]] = None


def stack_dump(config: dict) -> Any:
    """Where faulthandler writes this task's stacks on SIGUSR1 (a timeout's
    report): a memfd the controller reads through ``/proc/<pid>/fd`` (its
    number travels in the start step), else the file the controller named."""
    if hasattr(os, "memfd_create") and not config.get("dump_path"):
        try:
            dump: Any = os.memfd_create("races-stack", os.MFD_CLOEXEC)
        except OSError:
            return None
    elif config.get("dump_path"):
        dump = open(config["dump_path"], "w")  # noqa: SIM115 - lives as long as the process
    else:
        return None
    faulthandler.register(signal.SIGUSR1, file=dump, all_threads=True)
    return dump


def process_main(conn: Any, name: str, target: Callable, state: Any, config: dict, dump: Any = None) -> None:
    """Entry point of a task process (direct launch and template fork alike).
    ``conn`` is a ``multiprocessing`` connection or a socket's descriptor;
    ``dump`` is the stack dump when :func:`stack_dump` was already called."""
    wire = Wire(conn if isinstance(conn, int) else conn.fileno())
    if dump is None:
        dump = stack_dump(config)
    if not PREPATCHED:
        patches.install_for_process()
    if config.get("patch"):
        from . import patch_mode

        patch_mode.install_for_process()  # (in a template's child: counted, already applied)
    elif PREPATCHED:
        from . import patch_mode

        patch_mode.uninstall_for_process()  # the template's, for a run without patch mode
    mask = None
    if config.get("cpu") is not None:
        from .affinity import pin

        mask = pin(config["cpu"])  # (a template's child waits there already) one task runs at a time
        if AFFINITY is not None:
            mask = AFFINITY
    random.seed(f"{config.get('seed', 0)}:{name}")
    # a task is a program of its own (the template it was forked from is a
    # daemon): its Process objects are not daemonic unless it is a daemon child
    from multiprocessing import process as mp_process

    current = mp_process.current_process()
    current._config["daemon"] = bool(getattr(target, "daemon", False))  # type: ignore[attr-defined]
    agent = Agent(name, WireChannel(wire))
    bind_process(agent)
    process_threads.reset()
    process_threads.ACTIVE = True
    message: tuple
    try:
        # the start step carries the stack dump's descriptor (the transport takes it off)
        agent.step("start", "start", args=(dump,) if isinstance(dump, int) else ())
        target(state)
        process_threads.join_at_exit(agent)  # (threading._shutdown)
        message = ("done", None)
    except TaskAborted:
        message = ("aborted", None)
    except BaseException as exc:  # noqa: BLE001 - a task's failure is data
        message = ("error", describe_exception(exc))
    finally:
        if config.get("patch"):
            from . import patch_mode

            # the finalizers of a process's exit: its Managers go down first
            patch_mode.shutdown_task_managers()
        sys.stdout.flush()
        sys.stderr.flush()
    leave = True
    try:
        wire.send_bytes(dumps(message))
        # the controller answers whether other tasks of the run still run
        leave = bool(wire.recv()[1])
    except (OSError, EOFError):
        pass
    if leave and mask is not None and len(mask) > 1:
        # the run goes on without this task: let its exit (finalizers, the
        # kernel tearing down its memory) use another core than the run's
        try:
            os.sched_setaffinity(0, mask - {config["cpu"]})
        except OSError:
            pass


def start_step_location(target: Callable) -> str:
    return target_location(target)


def pid() -> int:
    return os.getpid()
