"""Deterministic ids for controlled objects: ``<creator>/<Kind><n>``.

The creator is the task that made the object (or ``:main`` outside any task:
a task name has no ``:``, so an object ``setup()`` made never shares an id with
one a task named ``main`` makes in its own process, whose counters start
afresh), so the same run always gives the same ids, in every process."""
from __future__ import annotations

import itertools
import threading
from typing import Dict, Iterator

from .agent import current

_counters: Dict[str, Iterator[int]] = {}
_lock = threading.Lock()


def new_id(kind: str) -> str:
    agent = current()
    creator = agent.name if agent is not None else ":main"
    key = f"{creator}/{kind}"
    with _lock:
        counter = _counters.setdefault(key, itertools.count(1))
        return f"{key}{next(counter)}"


def reset() -> None:
    """Called at the start of every run so ids repeat from run to run."""
    with _lock:
        _counters.clear()
