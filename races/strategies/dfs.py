"""Exhaustive depth-first search over the choices, with partial-order reduction.

:class:`DFSExplorer` is the state kept between runs: the tree of decisions
seen so far (each node knows which tasks were enabled, the step each stood
at, which choices are still to explore and its sleep set).  Each run gets a
:class:`DFSRun` strategy that follows a prefix of recorded choices to one
unexplored alternative and then continues in the default order, adding new
nodes as it goes.

Reduction is dynamic partial-order reduction (Flanagan and Godefroid, POPL
2005) with sleep sets: a node starts with only the choice the run took, and
after each run every pair of dependent steps of different tasks that could
have happened in the other order (a race: not ordered by program order or a
chain of other dependencies) adds the later task as a choice at the earlier
step's node.  Two steps are dependent when they touch the same object (the
same lock, Manager object or queue: the same ``Step.obj``) when
``points="independent"``, which is only right when every piece of shared
state goes through a controlled object; with ``points="dependent"`` (the
default) every two steps of different tasks are, because the code between
two sync points may share anything (see :func:`dependent`).  A blocked task's
pending step takes part too (``next(s, p)``), so lock-order deadlocks are found.

``reduction=False`` explores every enabled choice at every node.

A model's question with several answers (a stale ``Queue.empty()``, see
:meth:`Strategy.choose_value`) is a node of its own whose choices are the
answers, named ``"=0"``, ``"=1"``...: every answer is explored (no reduction
there), it takes part in no race and never sleeps; a switch to a stale answer
is a deviation from the default order but not a preemption.

Alternatives wait in a queue ordered by the number of choices their
schedule makes against the default order (as in delay-bounded scheduling, so
bugs a single switch away are found early even in large spaces), deepest
first among equals.  The order never changes what a complete search covers.
A preemption bound counts the switches away from a task that could have
gone on; with one, alternatives whose schedule needs more preemptions than
the bound are left out (each schedule is still run once).  The bound filters
and does not order: ordering by preemptions first (iterative context bounding,
as in CHESS) spends the budget on the many switch-free orders of ten tasks —
10! of them, none a deviation a bug needs — before the first one-switch
schedule; a failure is shrunk to its fewest preemptions afterwards anyway.  As in
Coons, Musuvathi and McKinley (OOPSLA 2013), a race that would need a
preemption also adds its task where the earlier task's run of steps began.
"""
from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence

from .._core.errors import RacesError
from .._core.step import Step
from .base import Strategy
from .choices import Decision, Recorder, default_choice, is_preemption

_new_tuple = tuple.__new__  # a Decision without its Python-level __new__

POINTS_MODES = ("dependent", "independent")
ANSWER = "="  # prefix of the pseudo-choices of a model's question: "=0", "=1"...


def _is_answer(name: str) -> bool:
    return name.startswith(ANSWER)


class NondeterminismError(RacesError, RuntimeError):
    """A replayed prefix met different enabled tasks than when it was recorded."""


def dependent(a: Step, b: Step, points: str = "dependent") -> bool:
    """Whether steps ``a`` and ``b`` (of different tasks) may not commute.

    A step stands for itself *and* the code that runs after it up to the next
    sync point, which may touch anything (a file, a plain attribute).  So with
    ``points="dependent"`` (the default) every two steps of different tasks are
    dependent: sound for any program, and the search is plain DFS with sleep
    sets.  With ``points="independent"`` only steps on the same controlled
    object are: right when every piece of shared state goes through a
    controlled object (a Manager, a races primitive, a watched file)."""
    if points == "dependent":
        return True
    return a.obj is not None and a.obj == b.obj


class Node:
    """One decision of the tree."""

    __slots__ = ("backtrack", "children", "cost", "current", "delays", "depth", "done", "enabled", "parent",
                 "sleep", "steps", "via")

    def __init__(self, parent: Node | None, via: str | None, enabled: Sequence[str], current: str | None,
                 steps: Mapping[str, Step], sleep: list[tuple[str, Step]], cost: int) -> None:
        self.parent = parent
        self.via = via
        self.depth: int = 0 if parent is None else parent.depth + 1
        self.enabled = tuple(enabled)
        self.current = current
        self.steps = dict(steps)
        self.sleep = sleep
        self.cost = cost  # preemptions on the path before this node
        # choices on the path that were not the default order's
        self.delays = 0 if parent is None else parent.choice_delays(via)  # type: ignore[arg-type]
        self.backtrack: list[str] = []
        self.done: list[str] = []
        self.children: dict[str, Node] = {}

    def sleeping(self) -> list[str]:
        return [name for name, _ in self.sleep]

    def choices(self) -> list[str]:
        """The path's choices from the root to this node (exclusive)."""
        out: list[str] = []
        node: Node | None = self
        while node is not None and node.parent is not None:
            out.append(node.via)  # type: ignore[arg-type]  # only the root has no via
            node = node.parent
        return list(reversed(out))

    def choice_delays(self, choice: str) -> int:
        return self.delays + (0 if choice == default_choice(self.enabled, self.current) else 1)

    def choice_cost(self, choice: str) -> int:
        return self.cost + (1 if is_preemption(self.enabled, self.current, choice) else 0)


class _Canon:
    """Rename objects by first appearance in a run, so that steps of
    different runs compare (Manager objects get new ids every run)."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def step(self, step: Step) -> Step:
        if step.obj is None:
            return step
        name = self.names.get(step.obj)
        if name is None:
            name = self.names[step.obj] = f"#{len(self.names)}"
        return step._replace(obj=name, location="", args=())


class DFSExplorer:
    """The tree and the queue of alternatives, carried from run to run."""

    def __init__(self, reduction: bool = True, points: str = "dependent",
                 preemption_bound: int | None = None, shard: tuple[int, int] | None = None) -> None:
        if points not in POINTS_MODES:
            raise ValueError(f"points must be one of {', '.join(POINTS_MODES)}, not {points!r}")
        if preemption_bound is not None and preemption_bound < 0:
            raise ValueError(f"preemption_bound must be None or >= 0, not {preemption_bound!r}")
        self.reduction = reduction
        self.points = points
        self.bound = preemption_bound
        self.shard = shard
        self.root: Node | None = None
        self.branch: Node | None = None  # the first node with a real choice (for sharding)
        self._queue: list[tuple] = []
        self._seq = 0
        self.started = False
        self.beyond_bound = 0  # alternatives left out by the bound
        self.redundant = 0  # runs that ended in a sleep-set block

    # -- the queue -------------------------------------------------------------
    def _push(self, node: Node, choice: str) -> None:
        if choice in node.done or choice not in node.enabled:
            return
        if choice not in node.backtrack:
            node.backtrack.append(choice)
        cost = node.choice_cost(choice)
        self._seq += 1
        # fewest deviations from the default order first (delay bounding: shallow
        # bugs early), then deepest, then fewest preemptions, then oldest
        key = (node.choice_delays(choice), -node.depth, cost, self._seq)
        heapq.heappush(self._queue, (key, node, choice, cost))

    def _owned(self, node: Node, choice: str) -> bool:
        if self.shard is None:
            return True
        index, count = self.shard
        if self.branch is None:
            return index == 0
        # the branch node's choice this alternative lies under
        at: Node | None = node
        via = choice
        while at is not None and at is not self.branch:
            via = at.via  # type: ignore[assignment]
            at = at.parent
        if at is None:  # above the branch node: a single path, owned by the default choice's shard
            return self.branch.enabled.index(self.branch.backtrack[0]) % count == index
        return self.branch.enabled.index(via) % count == index

    def root_owned(self) -> bool:
        """Whether the first (default-order) run belongs to this shard."""
        if self.shard is None or self.branch is None:
            return self.shard is None or self.shard[0] == 0
        return self.branch.enabled.index(self.branch.backtrack[0]) % self.shard[1] == self.shard[0]

    def next_run(self) -> DFSRun | None:
        """The strategy of the next run, or None when the search is complete."""
        if not self.started:
            self.started = True
            return DFSRun(self, None, None)
        while self._queue:
            _, node, choice, cost = heapq.heappop(self._queue)
            if self.bound is not None and cost > self.bound:
                self.beyond_bound += 1  # needs more preemptions than allowed
                continue
            if choice in node.done or (node.sleep and choice in node.sleeping()) or not self._owned(node, choice):
                continue
            node.done.append(choice)
            return DFSRun(self, node, choice)
        return None

    @property
    def exhaustive(self) -> bool:
        """True when no alternative within the bound is left."""
        for entry in self._queue:
            _, node, choice, cost = entry
            if self.bound is not None and cost > self.bound:
                continue
            if choice in node.done or choice in node.sleeping() or not self._owned(node, choice):
                continue
            return False
        return True

    # -- after a run -------------------------------------------------------------
    def record(self, run: DFSRun) -> None:
        if run.blocked:
            self.redundant += 1
        if not self.reduction:
            return
        if self.points == "dependent" and not any(_is_answer(task) for task, _ in run.moves):
            self._record_dependent(run)  # the linear path knows no answers; they are rare
            return
        decisions = run.moves
        n = len(decisions)
        hb_incl: list[int] = [0] * n  # bit i set: decision i happens before (or is) this one
        last_of_task: dict[str, int] = {}
        for j in range(n):
            task_j, step_j = decisions[j][0], decisions[j][1]
            if _is_answer(task_j):  # a model's answer: no task moved
                hb_incl[j] = 1 << j
                continue
            preds: list[int] = []
            races: list[int] = []
            prev = last_of_task.get(task_j)
            if prev is not None:
                preds.append(prev)
            for i in range(j):
                task_i, step_i = decisions[i][0], decisions[i][1]
                if task_i != task_j and not _is_answer(task_i) and dependent(step_i, step_j, self.points):
                    preds.append(i)
                    races.append(i)
            acc = 0
            for k in preds:
                acc |= hb_incl[k]
            hb_incl[j] = acc | (1 << j)
            if races:
                # i races with j unless another direct predecessor already follows i
                m = len(preds)
                racing = frozenset(races)  # membership only; preds keeps the order
                suffix = [0] * (m + 1)
                for x in range(m - 1, -1, -1):
                    suffix[x] = suffix[x + 1] | hb_incl[preds[x]]
                prefix = 0
                for x, k in enumerate(preds):
                    if k in racing and not ((prefix | suffix[x + 1]) >> k) & 1:
                        self._add_backtrack(run, k, task_j)
                    prefix |= hb_incl[k]
            last_of_task[task_j] = j
        self._pending_races(run, hb_incl)

    def _record_dependent(self, run: DFSRun) -> None:
        """:meth:`record` when every two steps of different tasks are dependent
        (``points="dependent"``): the same backtrack points, in the same order,
        in linear time.

        There every step ``j`` happens after every earlier step (``hb_incl[j]``
        holds bits ``0..j``), so the one race of step ``j`` that no other
        predecessor covers is with step ``j - 1`` when another task took it;
        and in :meth:`_pending_races` the last step of another task before
        decision ``j`` comes after the last step of the pending task exactly
        when it is step ``j - 1`` and that task did not take it."""
        tasks = [task for task, _ in run.moves]
        n = len(tasks)
        # (decision, task) of every backtrack point, in the order record() adds them
        points = [(j - 1, tasks[j]) for j in range(1, n) if tasks[j - 1] != tasks[j]]
        pendings = run.pendings
        for j in range(1, min(n, len(pendings))):
            before = tasks[j - 1]
            for task in pendings[j]:
                if task != before:
                    points.append((j - 1, task))
        if self.bound is not None:
            for i, task in points:
                self._add_backtrack(run, i, task)
            return
        path = run.path  # _add_backtrack without a bound, inlined
        depth = len(path)
        push = self._push
        for i, task in points:
            if i >= depth:
                continue
            node = path[i]
            if task in node.enabled:
                if task not in node.done:  # else _push returns at once
                    push(node, task)
            else:
                for name in node.enabled:
                    push(node, name)

    def _pending_races(self, run: DFSRun, hb_incl: list[int]) -> None:
        """Flanagan and Godefroid's ``next(s, p)``: at every state, the step each
        task stands at (taken later or never: a blocked acquire) races with the
        last dependent step of another task that does not happen before it.
        Without this, a task that only ever *waits* for a lock the other task
        took first never gets to take it first: lock-order deadlocks hide."""
        decisions = run.moves
        last_of_task: dict[str, int] = {}
        for j, pending in enumerate(run.pendings[: len(decisions)]):
            for task, step in pending.items():
                mine = last_of_task.get(task)
                hb = hb_incl[mine] if mine is not None else 0
                for i in range(j - 1, -1, -1):
                    task_i, step_i = decisions[i]
                    if task_i == task or _is_answer(task_i) or not dependent(step_i, step, self.points):
                        continue
                    if not (hb >> i) & 1:
                        self._add_backtrack(run, i, task)
                        break
            if not _is_answer(decisions[j][0]):
                last_of_task[decisions[j][0]] = j

    def _add_backtrack(self, run: DFSRun, i: int, task: str) -> None:
        if i >= len(run.path):
            return  # past a sleep-set block: that part of the run is redundant
        node = run.path[i]
        if task in node.enabled:
            self._push(node, task)
            targets = [task]
        else:
            targets = list(node.enabled)
            for name in targets:
                self._push(node, name)
        if self.bound is not None:
            # Coons et al.: also try the switch where the preempted task's run of steps began
            runner = run.moves[i][0]
            k = i
            while k > 0 and run.path[k].current == runner:
                k -= 1
            if k != i:
                earlier = run.path[k]
                for name in targets:
                    if name in earlier.enabled:
                        self._push(earlier, name)
                    else:
                        for other in earlier.enabled:
                            self._push(earlier, other)


class DFSRun(Recorder):
    """One run of the search: follow the prefix to ``(node, choice)``, then the
    default order, growing the tree.  It records its decisions as a
    :class:`~races.strategies.choices.Recorder` does (the explorer shrinks a
    failing run from them), without the extra layer."""

    def __init__(self, explorer: DFSExplorer, node: Node | None, choice: str | None) -> None:
        super().__init__(Strategy())
        self.explorer = explorer
        self.prefix: list[str] = (node.choices() + [choice]) if node is not None else []  # type: ignore[list-item]
        self.path: list[Node] = []  # tree nodes of this run's decisions (until a sleep-set block)
        self.moves: list[tuple[str, Step]] = []  # (task, canonical step) per decision
        # before each decision: the step every live task stands at, blocked ones too
        self.pendings: list[Mapping[str, Step]] = []
        self.blocked = False
        self.preempted = 0
        self._canon = _Canon()
        self._start = node
        self._node: Node | None = None  # the node of the last decision
        # every two steps of different tasks are dependent: no step is ever
        # compared (record, sleep sets), only which tasks stood where
        self._raw_steps = explorer.points == "dependent" and explorer.reduction

    def finished(self, failed: bool) -> None:
        self.failed = failed

    def choose(
        self, enabled: Sequence[str], current: str | None, pending: Mapping[str, Step] | None = None
    ) -> str:
        ex = self.explorer
        moves = self.moves
        position = len(moves)
        steps: Mapping[str, Step]
        if self._raw_steps and pending is not None:
            steps = pending
            self.pendings.append(pending)
        else:
            steps = {name: self._canon.step((pending or {}).get(name) or Step("point", name)) for name in enabled}
            self.pendings.append({
                name: steps[name] if name in steps else self._canon.step(step)
                for name, step in (pending or {}).items()
            })
        names = tuple(enabled)
        prefix = self.prefix
        if position < len(prefix):
            node = self._node.children.get(prefix[position - 1]) if position else ex.root  # type: ignore[union-attr]
            if node is None or node.enabled != names:
                raise NondeterminismError(
                    f"decision {position + 1} of a replayed prefix found tasks {list(enabled)} able to run, "
                    f"where an earlier run found {list(node.enabled) if node else '?'}: the tasks are not "
                    "deterministic between sync points (uncontrolled threads, time or I/O?)"
                )
            choice = prefix[position]
        else:
            node = self._new_node(enabled, current, steps)
            if node is None:
                choice = default_choice(enabled, current)
            else:
                sleeping = node.sleeping() if node.sleep else ()
                awake = [name for name in enabled if name not in sleeping] if sleeping else list(enabled)
                if not awake:
                    # every choice is covered by an earlier sibling: redundant from here on
                    self.blocked = True
                    node = None
                    choice = default_choice(enabled, current)
                else:
                    choice = default_choice(awake, current if current in awake else None)
                    node.backtrack.append(choice)
                    node.done.append(choice)
                    if not ex.reduction:
                        for name in enabled:
                            if name != choice:
                                ex._push(node, name)
                    elif ex.shard is not None and ex.branch is None and len(awake) > 1:
                        ex.branch = node  # sharding: every choice of the first branching node
                        for name in awake:
                            ex._push(node, name)
        if node is not None:
            self.path.append(node)
            self._node = node
        if current is not None and choice != current and current in enabled:  # a preemption
            self.preempted += 1
        step = steps[choice]
        moves.append((choice, step))
        self.decisions.append(_new_tuple(Decision, (
            names, current, choice, pending.get(choice) if pending is not None else None,
        )))
        return choice

    def choose_value(self, options: Sequence[str]) -> int:
        """A model's question: a node whose choices are the answers, all explored."""
        ex = self.explorer
        position = len(self.moves)
        names = tuple(f"{ANSWER}{k}" for k in range(len(options)))
        steps = {name: Step("answer", name) for name in names}
        current = self.moves[-1][0] if self.moves else None
        self.pendings.append({})
        if position < len(self.prefix):
            node = ex.root if position == 0 else self._node.children.get(self.prefix[position - 1])  # type: ignore[union-attr]
            if node is None or node.enabled != names:
                raise NondeterminismError(
                    f"decision {position + 1} of a replayed prefix asks a question with {len(options)} answers "
                    f"({' / '.join(options)}) where an earlier run found {list(node.enabled) if node else '?'}: "
                    "the tasks are not deterministic between sync points"
                )
            choice = self.prefix[position]
        else:
            node = self._new_node(names, current, steps)
            choice = names[0]
            if node is not None:
                node.backtrack.append(choice)
                node.done.append(choice)
                for name in names[1:]:
                    ex._push(node, name)
        if node is not None:
            self.path.append(node)
            self._node = node
        self.moves.append((choice, steps[choice]))
        k = int(choice[len(ANSWER):])
        self.values.append(k)  # as a Recorder does (the shrinker keeps the answers)
        return k

    def _new_node(self, enabled: Sequence[str], current: str | None, steps: Mapping[str, Step]) -> Node | None:
        ex = self.explorer
        if self.blocked:
            return None
        parent = self._node
        if parent is None:
            if ex.root is None:
                ex.root = Node(None, None, enabled, current, steps, [], 0)
            return ex.root if len(self.moves) == 0 else None
        via = self.moves[-1][0]
        existing = parent.children.get(via)
        if existing is not None:  # cannot happen for a fresh alternative; keep the tree consistent
            return existing
        sleep: list[tuple[str, Step]] = []
        if ex.reduction and ex.points != "dependent":  # every step dependent: nothing ever sleeps
            moved = parent.steps[via]
            before = parent.done
            if parent is ex.branch:
                # sharded: every choice here is explored, each in its shard; the ones
                # ahead of ``via`` (the first run's, then task order) sleep, whichever
                # shard ran first
                order = parent.backtrack[:1] + [n for n in parent.enabled if n != parent.backtrack[0]]
                before = order[: order.index(via)]
            candidates = list(parent.sleep) + [(name, parent.steps[name]) for name in before if name != via]
            seen: list[str] = []
            for name, step in candidates:
                if name == via or name in seen or _is_answer(name):
                    continue
                if not dependent(step, moved, ex.points):
                    sleep.append((name, step))
                    seen.append(name)
        cost = parent.choice_cost(via)
        node = Node(parent, via, enabled, current, steps, sleep, cost)
        parent.children[via] = node
        return node
