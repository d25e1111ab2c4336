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


def pin() -> Optional[Set[int]]:
    """Pin the calling thread to one allowed CPU; return the mask to restore."""
    if not _supported or os.environ.get("RACES_NO_PIN"):
        return None
    try:
        allowed = sorted(os.sched_getaffinity(0))
        if len(allowed) < 2:
            return None
        os.sched_setaffinity(0, {allowed[os.getpid() % len(allowed)]})
        return set(allowed)
    except OSError:
        return None


def restore(mask: Optional[Set[int]]) -> None:
    if mask is not None:
        try:
            os.sched_setaffinity(0, mask)
        except OSError:
            pass
