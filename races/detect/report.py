"""Race reports in the style of Go's race detector.

::

    WARNING: DATA RACE on dict['num']
      write by task p1 at scenarios/manager_lost_update.py:31 (dict.__setitem__):
        scenarios/manager_lost_update.py:31
      previous read by task p0 at scenarios/manager_lost_update.py:29 (dict.__getitem__):
        scenarios/manager_lost_update.py:29
      why: no lock held in common (p0 held no lock, p1 held no lock), no happens-before between them
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Sequence


class Access(NamedTuple):
    """One access to a shared location, as a race report shows it."""

    kind: str  # "read", "write" or "atomic" (os.replace)
    task: str
    where: str  # file:line
    display: str  # the location: dict['num'], ticket.json, counter.value
    op: str  # what the task called: dict.__getitem__, file.truncate
    stack: tuple  # ((file:line, function), ...), innermost first
    held: tuple  # ((lock id, label), ...) held at the access
    container: str  # id of the object the location is in

    def describe(self, previous: bool = False) -> str:
        what = {"atomic": "atomic replace"}.get(self.kind, self.kind)
        head = f"{'previous ' if previous else ''}{what} by task {self.task} at {self.where} ({self.op})"
        lines = [f"  {head[0].upper()}{head[1:]}:"]
        for where, function in self.stack:
            lines.append(f"      {where}" + (f" in {function}()" if function else ""))
        return "\n".join(lines)


def _locks(task: str, held: tuple) -> str:
    if not held:
        return f"{task} held no lock"
    labels = [label for _, label in held]
    dup = len(set(labels)) != len(labels)
    return f"{task} held " + ", ".join(f"{label} ({obj})" if dup else label for obj, label in held)


def why(first: Access, second: Access) -> str:
    mine = {obj for obj, _ in first.held}
    common = [label for obj, label in second.held if obj in mine]
    locks = f"{_locks(first.task, first.held)}, {_locks(second.task, second.held)}"
    if common:  # held in common yet unordered: a lock taken outside the harness's control
        return f"no happens-before between them although both held {', '.join(common)} ({locks})"
    same = {label for _, label in first.held} & {label for _, label in second.held}
    if same:
        locks += f"; the locks named {', '.join(sorted(same))} are different objects"
    return f"no lock held in common ({locks}), no happens-before between them"


@dataclass
class Race:
    """Two accesses to one location, at least one a write, neither ordered before the other."""

    location: str
    first: Access
    second: Access
    why: str

    @classmethod
    def between(cls, first: Access, second: Access) -> "Race":
        location = second.display if len(second.display) >= len(first.display) else first.display
        return cls(location, first, second, why(first, second))

    @property
    def kinds(self) -> tuple:
        return (self.first.kind, self.second.kind)

    def describe(self) -> str:
        return "\n".join([
            f"WARNING: DATA RACE on {self.location}",
            self.second.describe(),
            self.first.describe(previous=True),
            f"  Why: {self.why}",
        ])

    def __str__(self) -> str:
        return f"data race on {self.location}: {self.first.kind} by {self.first.task} at {self.first.where}, " \
               f"{self.second.kind} by {self.second.task} at {self.second.where}"


def format_races(races: Sequence[Race]) -> str:
    return "\n\n".join(r.describe() for r in races)


def failure_message(races: Sequence[Race]) -> str:
    n = len(races)
    head = f"{n} data race{'s' if n != 1 else ''} detected (detect_races=True)"
    return head + "\n" + format_races(races)
