"""``races.Scenario``: the shape of one catalogue page.

A scenario bundles the buggy task set, one or more fixed task sets, the
schedule that forces the bug, the failure kind that bug produces and the
backends it applies to.  ``proof`` says how a fix is proved (:meth:`Scenario.prove`):
exhaustive exploration within ``preemption_bound`` (default 2), on the first
``tasks`` tasks of the variant (default all) with ``setup_args`` passed to
``setup`` (so a ten-task scenario can be proved at three: its setup and
invariant must then follow the task count).  Modules in ``scenarios/`` define one ``SCENARIO``
each; users may write their own for ``races explore MODULE:OBJECT``.
"""
from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._core.result import Result
from ._core.runner import replay, run


@dataclass
class Scenario:
    name: str
    setup: Callable[[], Any]
    buggy: Mapping[str, Callable[[Any], Any]]
    fixes: Mapping[str, Mapping[str, Callable[[Any], Any]]]
    schedule: Sequence[str]
    expect: str
    invariant: Callable[[Any], Any] | None = None
    teardown: Callable[[Any], Any] | None = None
    backends: tuple[str, ...] = ("thread", "process")
    options: dict[str, Any] = field(default_factory=dict)
    proof: dict[str, Any] = field(default_factory=dict)

    @property
    def doc(self) -> str:
        module = sys.modules.get(self.setup.__module__)
        return (module.__doc__ or "").strip() if module else ""

    @property
    def summary(self) -> str:
        return self.doc.splitlines()[0] if self.doc else self.name

    def variants(self) -> dict[str, Mapping[str, Callable[[Any], Any]]]:
        return {"buggy": self.buggy, **{f"fixed:{k}": v for k, v in self.fixes.items()}}

    def tasks_for(self, variant: str) -> Mapping[str, Callable[[Any], Any]]:
        try:
            return self.variants()[variant]
        except KeyError:
            raise ValueError(
                f"scenario {self.name!r} has no variant {variant!r}; it has {', '.join(self.variants())}"
            ) from None

    def run_options(self, **options: Any) -> dict[str, Any]:
        """The options for ``races.run``/``replay``: ``self.options`` without the
        ``stress`` declaration (read by ``races.stress``), overridden by ``options``."""
        return {**{k: v for k, v in self.options.items() if k != "stress"}, **options}

    def run(self, variant: str = "buggy", schedule: Sequence[str] | None = None, **options: Any) -> Result:
        """Run one variant; the forcing schedule is the default."""
        opts = self.run_options(**options)
        return run(
            self.setup,
            self.tasks_for(variant),
            self.invariant,
            schedule=list(self.schedule) if schedule is None else schedule,
            teardown=self.teardown,
            **opts,
        )

    def prove(self, variant: str, max_schedules: int = 20_000, **options: Any) -> Result:
        """Explore ``variant`` exhaustively within the scenario's ``proof`` bound.

        The result passes and has ``exhaustive`` True when every schedule within
        the bound holds; it fails with the shortest counterexample otherwise."""
        from ._core.explore import explore

        bound = self.proof.get("preemption_bound", 2)
        tasks = dict(self.tasks_for(variant))
        count = self.proof.get("tasks")
        if count is not None:
            tasks = dict(list(tasks.items())[:count])
        args = tuple(self.proof.get("setup_args", ()))

        def setup() -> Any:
            return self.setup(*args)

        return explore(setup, tasks, self.invariant, preemption_bound=bound, max_schedules=max_schedules,
                       teardown=self.teardown, **self.run_options(**options))

    def replay(self, token: str, variant: str = "buggy", **options: Any) -> Result:
        opts = self.run_options(**options)
        return replay(token, self.setup, self.tasks_for(variant), self.invariant, teardown=self.teardown, **opts)
