"""The race detector: happens-before (vector clocks, FastTrack-style epochs)
over the steps the controller takes.

``races.run(..., detect_races=...)``:

* ``False`` (the default): no detector, ``Result.races`` stays empty;
* ``True``: races are collected in ``Result.races`` and, if the run did not
  fail otherwise, the run fails with a failure of kind ``race`` whose message
  lists them (Go-race-detector style);
* ``"report"``: races are collected in ``Result.races`` and listed as
  warnings in the report, but the run does not fail because of them.

What counts as an access: Manager proxy calls, ``races.Value`` /
``races.Array``, objects wrapped by ``races.shared(obj)`` (thread backend),
and files under ``watch=[...]`` directories (thread backend).
"""
from __future__ import annotations

from typing import Any, List, Optional

from .happens_before import Detector, attach
from .report import Access, Race, failure_message, format_races

MODES = (False, True, "report")


def check_mode(mode: Any) -> None:
    if mode not in MODES or (mode is not False and mode is not True and mode != "report"):
        raise ValueError(f"detect_races must be False, True or 'report', not {mode!r}")


def start(controller: Any, mode: Any) -> Optional[Detector]:
    """Attach a detector to ``controller`` when ``mode`` asks for one."""
    check_mode(mode)
    return attach(controller) if mode else None


def finish(detector: Optional[Detector], mode: Any, failure: Any, warnings: List[str]) -> Any:
    """The run's failure once races are taken into account (a race fails the run
    only with ``detect_races=True`` and no other failure)."""
    if detector is None or not detector.races:
        return failure
    if mode == "report" or failure is not None:
        warnings.extend(f"{r}" for r in detector.races)
        return failure
    from .._core.step import Failure

    return Failure("race", failure_message(detector.races))


__all__ = ["Access", "Detector", "Race", "attach", "check_mode", "failure_message", "finish",
           "format_races", "start"]
