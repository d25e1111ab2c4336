"""Controlled primitives: one module per family, each with the task-side
object users call and the controller-side model that decides blocking."""
from .lock import Lock

__all__ = ["Lock"]
