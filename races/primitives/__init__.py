"""Controlled primitives: one module per family, each with the task-side
object users call and the controller-side model that decides blocking."""
from .lock import Lock
from .rlock import RLock

__all__ = ["Lock", "RLock"]
