"""Lock-order inversion warnings, as the Linux kernel's lockdep gives them.

Every time a task takes lock B while it holds lock A, the run records the
order A → B with both acquisition sites.  When some other task takes them the
other way round (B held, then A), the two orders together can deadlock, even
though this run did not: each task may hold its first lock while waiting for
its second.  The run's ``Result.warnings`` then names both tasks and all four
sites.  Observes lock steps only (``races.Lock``, ``races.RLock`` and the
multiprocessing/threading locks patch mode turns into them).
"""
from __future__ import annotations

from typing import Dict, List, Tuple

LOCK_KINDS = ("lock", "rlock")


class LockOrder:
    """An observer of steps (``controller.observers``)."""

    KINDS = LOCK_KINDS  # the controller calls it for these steps only

    def __init__(self, warnings: List[str]) -> None:
        self.warnings = warnings
        # task -> locks it holds, in the order taken: (obj, label, site)
        self.held: Dict[str, List[Tuple[str, str, str]]] = {}
        # (first obj, second obj) -> (task, first label, first site, second label, second site)
        self.orders: Dict[Tuple[str, str], Tuple[str, str, str, str, str]] = {}
        self.reported: List[Tuple[str, str]] = []

    def __call__(self, task: str, step, reply: tuple) -> None:  # type: ignore[no-untyped-def]
        if step.kind not in LOCK_KINDS or step.obj is None:
            return
        held = self.held.setdefault(task, [])
        if step.name == "acquire" and reply == ("ok", True):
            label = step.label or step.obj
            for obj, first_label, first_site in held:
                if obj == step.obj:
                    continue
                self.orders.setdefault((obj, step.obj), (task, first_label, first_site, label, step.location))
                self._check(obj, step.obj)
            held.append((step.obj, label, step.location))
        elif step.name == "release":
            for i in range(len(held) - 1, -1, -1):
                if held[i][0] == step.obj:
                    del held[i]
                    break

    def _check(self, first: str, second: str) -> None:
        forward = self.orders.get((first, second))
        backward = self.orders.get((second, first))
        if forward is None or backward is None or forward[0] == backward[0]:
            return
        pair = (min(first, second), max(first, second))
        if pair in self.reported:
            return
        self.reported.append(pair)
        task_a, a1, a1_site, a2, a2_site = backward
        task_b, b1, b1_site, b2, b2_site = forward
        self.warnings.append(
            f"potential deadlock (lock order inversion): {task_a} took {a1} ({a1_site}) then "
            f"{a2} ({a2_site}); {task_b} took {b1} ({b1_site}) then {b2} ({b2_site}). "
            "If each holds its first lock while waiting for its second, neither can go on: "
            "take the locks in one global order"
        )
