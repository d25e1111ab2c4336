"""Plain data that crosses every boundary: the step a task is about to take,
the entries of a trace, and the failure a run ends with.

These are tuples so that they pickle cheaply across the process transport.
"""
from __future__ import annotations

import os
import sys
from typing import Any, NamedTuple, Optional

FAILURE_KINDS = (
    "invariant",
    "exception",
    "deadlock",
    "blocked",
    "crash",
    "timeout",
    "schedule",
    "race",
)


class Step(NamedTuple):
    """What a task announces at a sync point, before it does it.

    ``kind`` selects the model that decides whether the step is enabled
    (``start``, ``point``, ``sleep``, ``lock``, ``manager``, ...); ``name`` is
    what a schedule calls it (a point's name, ``sleep``, ``acquire``);
    ``label`` names the object (``L1``, ``dict#3``) so that a schedule may say
    ``L1.acquire``.  ``timeout`` is the virtual-time bound of a blocking step
    (``None`` waits forever).
    """

    kind: str
    name: str
    obj: Optional[str] = None
    label: Optional[str] = None
    location: str = "?"
    args: tuple = ()
    timeout: Optional[float] = None

    def matches(self, point: str) -> bool:
        """True when a schedule's ``task:point`` names this step."""
        if point == self.name:
            return True
        return self.label is not None and point == f"{self.label}.{self.name}"

    def describe(self) -> str:
        return f"{self.label}.{self.name}" if self.label else self.name


class TraceEntry(NamedTuple):
    """One step taken: which task passed which sync point, where, at what virtual time."""

    index: int  # type: ignore[assignment]  # the step number, shadowing tuple.index
    task: str
    name: str
    kind: str
    label: Optional[str]
    location: str
    clock: float
    note: str = ""

    def describe(self) -> str:
        return f"{self.label}.{self.name}" if self.label else self.name


class Failure(NamedTuple):
    """Why a run failed: ``kind`` is one of :data:`FAILURE_KINDS`."""

    kind: str
    message: str
    task: Optional[str] = None
    traceback: Optional[str] = None

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


# --- locations -------------------------------------------------------------

_RACES_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_SKIP_DIRS = (
    _RACES_DIR + os.sep,
    os.path.dirname(os.__file__) + os.sep + "multiprocessing" + os.sep,
    os.path.dirname(os.__file__) + os.sep + "threading.py",
    os.path.dirname(os.__file__) + os.sep + "queue.py",
)


def _is_user_frame(filename: str) -> bool:
    if filename.startswith("<"):
        return False
    return not filename.startswith(_SKIP_DIRS)


_short: dict = {}


def short_path(filename: str) -> str:
    """A path as reports print it: relative to the working directory when below it.

    Cached per (working directory, file): it is asked at every step."""
    key = (os.getcwd(), filename)
    found = _short.get(key)
    if found is None:
        try:
            rel = os.path.relpath(filename)
        except ValueError:
            rel = filename
        found = _short[key] = filename if rel.startswith("..") else rel
    return found


_user_files: dict = {}  # filename -> _is_user_frame(filename): asked at every step


def caller_location(depth: int = 2) -> str:
    """``file:line`` of the innermost frame outside races and the stdlib's sync modules."""
    frame: Any = sys._getframe(depth)
    user_files = _user_files
    while frame is not None:
        code = frame.f_code
        filename = code.co_filename
        user = user_files.get(filename)
        if user is None:
            user = user_files[filename] = _is_user_frame(filename)
        if user:
            # every step asks: the answer is kept per working directory and bytecode offset
            key = (_getcwd(), code, frame.f_lasti)
            found = _locations.get(key)
            if found is None:
                if len(_locations) > 100_000:
                    _locations.clear()
                found = _locations[key] = f"{short_path(filename)}:{frame.f_lineno}"
            return found
        frame = frame.f_back
    return "?"


_getcwd = os.getcwd
_locations: dict = {}


def caller_stack(depth: int = 2, limit: int = 4) -> tuple:
    """A short user stack, innermost first, as ``(file:line, function)`` pairs."""
    frame: Any = sys._getframe(depth)
    out: list = []
    while frame is not None and len(out) < limit:
        filename = frame.f_code.co_filename
        if _is_user_frame(filename):
            out.append((f"{short_path(filename)}:{frame.f_lineno}", frame.f_code.co_name))
        frame = frame.f_back
    return tuple(out)
