"""Strategies: who runs next among the enabled tasks.

A strategy never sees threads, pipes or primitives: it is handed the names of
the enabled tasks (in task order) and the task that ran last, and answers with
one of them.  One small class per file, after shuttle's schedulers.
"""
from .base import Strategy
from .nonpreemptive import NonPreemptive
from .replay import Replay

__all__ = ["Strategy", "NonPreemptive", "Replay"]
