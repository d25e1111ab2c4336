"""Strategies: who runs next among the enabled tasks.

A strategy never sees threads, pipes or primitives: it is handed the names of
the enabled tasks (in task order), the task that ran last and the step each
enabled task stands at, and answers with one of them.  One small class per
file, after shuttle's schedulers.
"""
from .base import Strategy
from .choices import Choices, ChoiceSchedule, Directed, Recorder
from .dfs import DFSExplorer, DFSRun, NondeterminismError, dependent
from .hypothesis import schedules
from .nonpreemptive import NonPreemptive
from .pct import PCT
from .random_walk import RandomWalk
from .replay import Replay
from .round_robin import RoundRobin

__all__ = [
    "PCT",
    "Anchored",
    "ChoiceSchedule",
    "Choices",
    "DFSExplorer",
    "DFSRun",
    "Directed",
    "NonPreemptive",
    "NondeterminismError",
    "RandomWalk",
    "Recorder",
    "Replay",
    "RoundRobin",
    "Strategy",
    "dependent",
    "schedules",
]
