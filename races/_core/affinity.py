"""Keep a run on one CPU.

Only one task runs at a time, so a run gains nothing from a second core, but
every handoff between threads (or processes) on different cores costs a
cross-core wake-up: ~70 µs a round trip on this 2-core VM against ~14 µs on
one core.  Linux's ``sched_setaffinity(0, ...)`` applies to the calling
thread only, and threads and processes inherit it from their creator, so the
controller pins itself while it creates and drives the tasks, and restores its
own mask afterwards.  Other threads of the process are untouched.  The core
is chosen from the pid, so parallel test workers spread over the cores.

An exploration makes thousands of runs from one thread: it pins that thread
once (:class:`held`), and the runs inside find it pinned already, so they
neither choose nor pin again.

Threads that hand the CPU to each other also run as ``SCHED_BATCH``
(:func:`batch`): a thread that releases the lock another waits on then
blocks on its own, but under the normal policy the woken thread preempts it
at once, finds the GIL still held and sleeps again: three switches instead of
one (a lock round trip costs ~20 µs of CPU here, ~9 µs as batch threads).
Batch threads are not preempted at wake-up; nothing else changes (same
priority, ordinary time slices), and children forked from them go back to
the normal policy.
"""
from __future__ import annotations

import os
import threading
from typing import Any, Dict, Optional, Set

_supported = hasattr(os, "sched_setaffinity") and hasattr(os, "sched_getaffinity")
_held: Dict[int, Optional[int]] = {}  # thread ident -> the CPU a held() block pinned it to


def choose() -> Optional[int]:
    """The CPU this process's runs use, or None when pinning is off or pointless."""
    held_cpu = _held.get(threading.get_ident(), -1)
    if held_cpu != -1:
        return held_cpu
    if not _supported or os.environ.get("RACES_NO_PIN"):
        return None
    try:  # the process's CPUs, not this thread's (a run may have pinned it already)
        allowed = sorted(_START_MASK or os.sched_getaffinity(0))
    except OSError:
        return None
    if len(allowed) < 2:
        return None
    return allowed[os.getpid() % len(allowed)]


def pin(cpu: Optional[int] = None) -> Optional[Set[int]]:
    """Pin the calling thread to ``cpu`` (default: :func:`choose`); return the mask to restore."""
    cpu = choose() if cpu is None else cpu
    if cpu is None or _held.get(threading.get_ident(), -1) == cpu:
        return None  # nothing to pin, or a held() block already did
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


_batch_supported = hasattr(os, "sched_setscheduler") and hasattr(os, "SCHED_BATCH")
_RESET_ON_FORK = getattr(os, "SCHED_RESET_ON_FORK", 0)


def batch() -> Optional[int]:
    """Make the calling thread ``SCHED_BATCH`` when it runs under the normal
    policy; return the policy to give back to :func:`unbatch` (None: unchanged)."""
    if not _batch_supported:
        return None
    try:
        policy = os.sched_getscheduler(0)
        if policy & ~_RESET_ON_FORK != os.SCHED_OTHER:
            return None  # a real-time or idle thread: leave it alone
        os.sched_setscheduler(0, os.SCHED_BATCH | _RESET_ON_FORK, os.sched_param(0))
        return policy
    except (OSError, AttributeError):
        return None


def unbatch(policy: Optional[int]) -> None:
    if policy is not None:
        try:
            os.sched_setscheduler(0, policy, os.sched_param(0))
        except OSError:
            pass


def pin_thread(cpu: Optional[int]) -> None:
    """Pin the calling thread to ``cpu``, or let it use every CPU the process may (None)."""
    if not _supported:
        return
    try:
        os.sched_setaffinity(0, {cpu} if cpu is not None else _all_cpus())
    except OSError:
        pass


def _all_cpus() -> Set[int]:
    return _START_MASK or set(range(os.cpu_count() or 1))


try:  # the CPUs the process may use, taken before any run pins a thread
    _START_MASK: Set[int] = set(os.sched_getaffinity(0)) if _supported else set()
except OSError:
    _START_MASK = set()


class held:
    """Context manager: pin the calling thread for a whole block of runs (an
    exploration); :func:`choose` and :func:`pin` inside it return at once."""

    def __enter__(self) -> "held":
        ident = threading.get_ident()
        self.outer = ident in _held
        if self.outer:
            self.mask: Any = None
            return self
        cpu = choose()
        self.mask = pin(cpu)
        self.policy = batch() if self.mask is not None else None
        _held[ident] = cpu if self.mask is not None else None
        return self

    def __exit__(self, *exc: Any) -> None:
        if not self.outer:
            _held.pop(threading.get_ident(), None)
            unbatch(self.policy)
            restore(self.mask)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_held.clear)
