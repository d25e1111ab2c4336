"""The readable report: the interleaving with one column per task, then the
failure, then the line that replays the run."""
from __future__ import annotations

from typing import TYPE_CHECKING, List

if TYPE_CHECKING:  # pragma: no cover
    from .._core.result import Result

COLUMN = 30


def _cell(text: str) -> str:
    return text if len(text) <= COLUMN else text[: COLUMN - 1] + "…"


def format_trace(result: "Result") -> str:
    names = result.task_names
    col = {n: i for i, n in enumerate(names)}
    header = f"{'step':>5} {'time':>6}  " + "".join(f"{_cell(n):<{COLUMN}}" for n in names)
    lines = [header.rstrip(), "-" * len(header.rstrip())]
    for e in result.trace:
        cells = [""] * len(names)
        text = e.describe() if e.kind != "end" else "(end)"
        if e.note:
            text += f" [{e.note}]"
        where = e.location.rsplit("/", 1)[-1]
        cells[col.get(e.task, 0)] = _cell(f"{text} {where}")
        row = f"{e.index:>5} {e.clock:>6.2f}  " + "".join(f"{c:<{COLUMN}}" for c in cells)
        lines.append(row.rstrip())
    return "\n".join(lines)


def cut_notes(result: "Result") -> List[str]:
    """The notes of steps whose cell was too narrow to show them whole."""
    out = []
    for e in result.trace:
        if e.note and len(f"{e.describe()} [{e.note}] {e.location.rsplit('/', 1)[-1]}") > COLUMN:
            out.append(f"step {e.index} ({e.task}, {e.describe()}): {e.note}")
    return out


def replay_line(result: "Result") -> str:
    if result.replay_command:
        return result.replay_command
    opts = "".join(
        f", {k}={v!r}" for k, v in sorted(result.options.items())
        if k in ("backend", "start_method", "granularity") and v is not None
    )
    return f"races.replay({result.token!r}, setup, tasks, invariant{opts})"


def format_report(result: "Result") -> str:
    parts: List[str] = []
    status = f"FAILED ({result.failure.kind})" if result.failure else "passed"
    backend = result.options.get("backend", "thread")
    method = result.options.get("start_method")
    where = f"{backend}/{method}" if method else backend
    extra = ""
    if result.schedules != 1:
        extra = f", {result.schedules} schedules" + (" (exhaustive)" if result.exhaustive else "")
    parts.append(f"races: {len(result.task_names)} tasks, {len(result.trace)} steps, {where}{extra}: {status}")
    if result.schedule is not None:
        parts.append(f"schedule: {result.schedule!r}")
    parts.append(format_trace(result))
    parts.extend(cut_notes(result))
    if result.failure is not None:
        parts.append(f"failure ({result.failure.kind}): {result.failure.message}")
        if result.failure.traceback:
            parts.append(result.failure.traceback.rstrip())
    for w in result.warnings:
        parts.append(f"warning: {w}")
    for n in result.notes:
        parts.append(f"note: {n}")
    parts.append(f"replay: {replay_line(result)}")
    return "\n".join(parts) + "\n"
