"""Controlled primitives: one module per family, each with the task-side
object users call and the controller-side model that decides blocking."""
from .barrier import Barrier, BrokenBarrierError
from .condition import Condition
from .event import Event
from .lock import Lock
from .pipe import Connection, Pipe
from .queue import JoinableQueue, Queue, SimpleQueue
from .rlock import RLock
from .semaphore import BoundedSemaphore, Semaphore
from .value import Array, Value

__all__ = [
    "Array",
    "Barrier",
    "BoundedSemaphore",
    "BrokenBarrierError",
    "Condition",
    "Connection",
    "Event",
    "JoinableQueue",
    "Lock",
    "Pipe",
    "Queue",
    "RLock",
    "Semaphore",
    "SimpleQueue",
    "Value",
]
