"""Explain why no task can run: a wait-for cycle is a ``deadlock``, anything
else is ``blocked``.  Every holder and waiter is named with its source line."""
from __future__ import annotations

from typing import TYPE_CHECKING, Dict, List, Optional

from .step import Failure

if TYPE_CHECKING:  # pragma: no cover
    from .controller import Controller, TaskRecord


def _holdings(run: "Controller", task: str) -> List[str]:
    held: List[str] = []
    for model in run.models.values():
        held.extend(model.held_by(task))
    return held


def _find_cycle(order: List[str], edges: Dict[str, List[str]]) -> Optional[List[str]]:
    """First wait-for cycle, searching from tasks in declaration order."""
    for start in order:
        path: List[str] = []
        on_path: Dict[str, int] = {}
        node: Optional[str] = start
        while node is not None and node not in on_path:
            on_path[node] = len(path)
            path.append(node)
            nxt = edges.get(node, [])
            node = nxt[0] if nxt else None
        if node is not None:
            return path[on_path[node]:]
    return None


def _line(run: "Controller", t: "TaskRecord") -> str:
    held = _holdings(run, t.name)
    reason = run.blocked_reason(t)
    if held:
        return f"{t.name} holds {', '.join(held)} and {reason}"
    return f"{t.name} {reason}"


def no_task_can_run(run: "Controller", live: List["TaskRecord"]) -> Failure:
    edges = {}
    for t in live:
        edges[t.name] = run.model_for(t.pending).waits_for(t.name, t.pending)
    cycle = _find_cycle([t.name for t in live], edges)
    if cycle is not None:
        lines = [_line(run, run.task(name)) for name in cycle]
        if len(cycle) == 1:
            head = f"deadlock: {cycle[0]} waits for itself"
        else:
            head = "deadlock: " + " -> ".join(cycle + [cycle[0]])
        others = [t for t in live if t.name not in cycle]
        lines += [_line(run, t) for t in others]
        return Failure("deadlock", head + "\n  " + "\n  ".join(lines), cycle[0])
    lines = [_line(run, t) for t in live]
    head = "blocked: no task can run and none will be woken"
    return Failure("blocked", head + "\n  " + "\n  ".join(lines), live[0].name)
