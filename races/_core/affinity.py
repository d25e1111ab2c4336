"""Keep a run on one CPU.

Only one task runs at a time, so a run gains nothing from a second core, but
every handoff between threads (or processes) on different cores costs a
cross-core wake-up: ~70 µs a round trip on this 2-core VM against ~14 µs on
one core.  Linux's ``sched_setaffinity(0, ...)`` applies to the calling
thread only, and threads and processes inherit it from their creator, so the
controller pins itself while it creates and drives the tasks, and restores its
own mask afterwards.  Other threads of the process are untouched.  The core
is chosen from the pid, so parallel test workers spread over the cores.
"""
from __future__ import annotations

import os
from typing import Optional, Set

_supported = hasattr(os, "sched_setaffinity") and hasattr(os, "sched_getaffinity")


def choose() -> Optional[int]:
    """The CPU this process's runs use, or None when pinning is off or pointless."""
    if not _supported or os.environ.get("RACES_NO_PIN"):
        return None
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except OSError:
        return None
    if len(allowed) < 2:
        return None
    return allowed[os.getpid() % len(allowed)]


def pin(cpu: Optional[int] = None) -> Optional[Set[int]]:
    """Pin the calling thread to ``cpu`` (default: :func:`choose`); return the mask to restore."""
    cpu = choose() if cpu is None else cpu
    if cpu is None:
        return None
    try:
        previous = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {cpu})
        return set(previous)
    except OSError:
        return None


def restore(mask: Optional[Set[int]]) -> None:
    if mask is not None:
        try:
            os.sched_setaffinity(0, mask)
        except OSError:
            pass
