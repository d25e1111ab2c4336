"""What runs inside a task process: bind the agent, patch, run the target,
report how it ended.  Module level so every start method can import it."""
from __future__ import annotations

import faulthandler
import os
import random
import signal
import sys
from typing import Any, Callable

from . import patches
from .agent import Agent, Channel, bind_process
from .errors import TaskAborted
from .thread_transport import describe_exception, target_location


class ConnChannel(Channel):
    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def exchange(self, message: tuple) -> tuple:
        self.conn.send(message)
        return self.conn.recv()


def process_main(conn: Any, name: str, target: Callable, state: Any, config: dict) -> None:
    """Entry point of a task process (direct launch and template fork alike)."""
    dump = None
    if config.get("dump_path"):
        dump = open(config["dump_path"], "w")  # noqa: SIM115 - lives as long as the process
        faulthandler.register(signal.SIGUSR1, file=dump, all_threads=True)
    patches.install_for_process()
    if config.get("patch"):
        from . import patch_mode

        patch_mode.install_for_process()
    if config.get("cpu") is not None:
        from .affinity import pin

        pin(config["cpu"])  # booted in parallel; from here on one task runs at a time
    random.seed(f"{config.get('seed', 0)}:{name}")
    # a task is a program of its own (the template it was forked from is a
    # daemon): its Process objects are not daemonic unless it is a daemon child
    from multiprocessing import process as mp_process

    current = mp_process.current_process()
    current._config["daemon"] = bool(getattr(target, "daemon", False))  # type: ignore[attr-defined]
    agent = Agent(name, ConnChannel(conn))
    bind_process(agent)
    message: tuple
    try:
        agent.step("start", "start")
        target(state)
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
    try:
        conn.send(message)
    except OSError:
        pass


def start_step_location(target: Callable) -> str:
    return target_location(target)


def pid() -> int:
    return os.getpid()
