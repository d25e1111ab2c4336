"""Exceptions the harness raises to its caller (bad input) and inside tasks (abort)."""
from __future__ import annotations


class RacesError(Exception):
    """Base class of every error races raises for bad input."""


class ScheduleError(RacesError, ValueError):
    """A schedule is malformed or names a task that does not exist."""


class ReplayError(RacesError, ValueError):
    """A token does not match the tasks and sync points it is replayed against."""


class TaskError(RacesError, TypeError):
    """A task cannot be run as given (not callable, bad name, cannot be pickled)."""


class SetupError(RacesError, RuntimeError):
    """``setup()`` raised; the run never started."""


class TaskAborted(BaseException):
    """Raised inside a task at its sync point when the controller ends the run early.

    A ``BaseException`` so that ``except Exception`` in user code does not swallow it.
    """
