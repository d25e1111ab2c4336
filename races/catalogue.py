"""The logic behind the ``races`` command line: check the scenario catalogue,
load user targets, write the catalogue's documentation.

User targets.  ``races explore MODULE:OBJECT`` and ``races replay TOKEN
MODULE:OBJECT`` import ``MODULE`` (the current directory is on the path) and
take its attribute ``OBJECT`` (dots walk into attributes: ``mod:ns.case``).
``OBJECT`` is one of:

* a :class:`races.Scenario`: its buggy tasks are used (``--variant fixed:NAME``
  picks a fix), with its invariant, teardown and options;
* a dict, or any object with attributes (a class, a ``SimpleNamespace``, a
  module), holding ``setup`` (a callable returning the shared state) and
  ``tasks`` (a dict of name -> callable taking the state, or a list of
  callables), and optionally ``invariant`` (a callable taking the state that
  asserts or returns False) and ``teardown``.

Anything else is a :class:`TargetError`, which the command line reports in one
line with exit status 2.
"""
from __future__ import annotations

import importlib
import inspect
import json
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import races
from races._core.runner import default_start_method
from races.scenario import Scenario

DEFAULT_MAX_SCHEDULES = 100  # per exploration (races run --max-schedules)
DEFAULT_STRESS_SECONDS = 1.0  # a stressed variant stops after this, having made at least one run


class TargetError(ValueError):
    """A bad scenario name or ``MODULE:OBJECT``: the message is one line."""


# -- user targets --------------------------------------------------------------
@dataclass
class Target:
    """What ``explore`` and ``replay`` need: setup, tasks, invariant, teardown."""

    label: str
    setup: Callable[[], Any]
    tasks: Any
    invariant: Callable[[Any], Any] | None = None
    teardown: Callable[[Any], Any] | None = None
    options: dict[str, Any] = field(default_factory=dict)


def _field(obj: Any, name: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def load_object(spec: str) -> Any:
    """Import ``MODULE`` and return its attribute ``OBJECT``; TargetError if not."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise TargetError(f"{spec!r} is not MODULE:OBJECT (for example mytests.races_cases:CASE)")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 -- any import failure is the user's input
        raise TargetError(
            f"cannot import module {module_name!r}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        ) from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise TargetError(f"{module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


def as_target(obj: Any, label: str, variant: str = "buggy") -> Target:
    """A :class:`Target` from a Scenario, a dict or a namespace; TargetError if not."""
    if isinstance(obj, Scenario):
        try:
            tasks = obj.tasks_for(variant)
        except ValueError as exc:
            raise TargetError(str(exc)) from None
        return Target(label, obj.setup, tasks, obj.invariant, obj.teardown, obj.run_options())
    if variant != "buggy":
        raise TargetError(f"{label} is not a races.Scenario, so it has no variant {variant!r}")
    setup, tasks = _field(obj, "setup"), _field(obj, "tasks")
    if not callable(setup) or not isinstance(tasks, (Mapping, list, tuple)) or isinstance(obj, (str, bytes)):
        raise TargetError(
            f"{label} is of type {type(obj).__name__}, not a races.Scenario or a dict/namespace with "
            "'setup' (callable) and 'tasks' (dict or list of callables)"
        )
    invariant, teardown = _field(obj, "invariant"), _field(obj, "teardown")
    for name, value in (("invariant", invariant), ("teardown", teardown)):
        if value is not None and not callable(value):
            raise TargetError(f"{label}: {name} is {value!r}, which is not callable")
    return Target(label, setup, tasks, invariant, teardown)


def load_target(spec: str, variant: str = "buggy") -> Target:
    return as_target(load_object(spec), spec, variant)


def explore_available() -> bool:
    return getattr(races, "explore", None) is not None


def _accepted(func: Callable, options: dict[str, Any]) -> dict[str, Any]:
    """The options ``func`` takes (all of them if it has ``**kwargs``)."""
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return options
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return options
    names = {p.name for p in params}
    return {k: v for k, v in options.items() if k in names}


def explore(target: Target, **options: Any) -> Any:
    """``races.explore`` on a target (TargetError when it does not exist yet)."""
    func = getattr(races, "explore", None)
    if func is None:
        raise TargetError(
            "exploration is not available: this version of races has no races.explore; "
            "use races run or races.run(..., schedule=[...]) instead"
        )
    opts = {**target.options, "teardown": target.teardown, **options}
    return func(target.setup, target.tasks, target.invariant, **_accepted(func, opts))


def replay(token: str, target: Target, **options: Any) -> Any:
    opts = {**target.options, **options}
    return races.replay(token, target.setup, target.tasks, target.invariant, teardown=target.teardown, **opts)


# -- the catalogue -------------------------------------------------------------
def catalogue_module() -> Any:
    """The ``scenarios`` package next to ``races`` (an editable install made
    before ``scenarios/__init__.py`` existed sees it as a namespace package)."""
    import scenarios

    if not hasattr(scenarios, "NAMES"):
        root = Path(races.__file__).resolve().parent.parent
        if not (root / "scenarios" / "__init__.py").exists():
            raise TargetError("the scenario catalogue (the scenarios package) is not installed")
        sys.path.insert(0, str(root))
        for key in [k for k in sys.modules if k == "scenarios" or k.startswith("scenarios.")]:
            del sys.modules[key]
        importlib.invalidate_caches()
        scenarios = importlib.import_module("scenarios")
    return scenarios


def scenario_names() -> list[str]:
    return list(catalogue_module().NAMES)


def load_scenario(name: str) -> Scenario:
    try:
        return catalogue_module().load(name)
    except ValueError as exc:
        raise TargetError(str(exc)) from None


def run_options(backend: str, start_method: str | None) -> dict[str, Any]:
    if backend == "process":
        return {"backend": "process", "start_method": start_method or default_start_method()}
    return {"backend": "thread"}


def replay_command(spec: str, result: Any, variant: str = "buggy") -> str:
    """The shell line that replays a run of ``MODULE:OBJECT``."""
    opts = result.options
    line = f"races replay {result.token} {spec} --backend {opts.get('backend', 'thread')}"
    if opts.get("backend") == "process" and opts.get("start_method"):
        line += f" --start-method {opts['start_method']}"
    if variant != "buggy":
        line += f" --variant {variant}"
    return line


def forced_report(name: str, backend: str = "thread", start_method: str | None = None) -> str:
    """The report of the scenario's bug under its forcing schedule, run now."""
    scenario = load_scenario(name)
    result = scenario.run("buggy", **run_options(backend, start_method))
    result.replay_command = replay_command(f"scenarios.{name}:SCENARIO", result)
    return result.report()


def _kind(result: Any) -> str | None:
    return result.failure.kind if result.failure is not None else None


def check(
    name: str,
    backend: str,
    start_method: str | None = None,
    repeat: int = 3,
    max_schedules: int = DEFAULT_MAX_SCHEDULES,
    explore_runs: bool = True,
    stress_runs: int = 0,
    stress_seconds: float = DEFAULT_STRESS_SECONDS,
    stress_budget_left: bool = True,
    fix_schedules: int | None = None,
) -> dict[str, Any]:
    """One row of ``races run``: does the bug reproduce, do the fixes hold, what
    does the race detector flag on a serial run, and (``stress_runs`` > 0) how
    often does the bug show in real parallel runs (see :func:`stress_row`)?
    Exploration looks for the bug within ``max_schedules`` and verifies each
    fix within ``fix_schedules`` (default: ``max_schedules``)."""
    scenario = load_scenario(name)
    opts = run_options(backend, start_method)
    started = time.monotonic()
    kinds = [_kind(scenario.run("buggy", **opts)) for _ in range(repeat)]
    row: dict[str, Any] = {
        "scenario": name,
        "backend": backend,
        "start_method": opts.get("start_method"),
        "expect": scenario.expect,
        "schedule": list(scenario.schedule),
        "runs": repeat,
        "reproduced": sum(k == scenario.expect for k in kinds),
        "kinds": kinds,
        "fixes": {},
        "explored": None,
    }
    detect = {"detect_races": "report", "watch": watch_folder}
    row["races"] = {"buggy": distinct_races(scenario.run("buggy", schedule=[], **detect, **opts)), "fixes": {}}
    for fix in scenario.fixes:
        natural_run = scenario.run(f"fixed:{fix}", schedule=[], **detect, **opts)
        natural = _kind(natural_run)
        forced = _kind(scenario.run(f"fixed:{fix}", **opts))
        row["races"]["fixes"][fix] = distinct_races(natural_run)
        row["fixes"][fix] = {
            "natural": natural,
            "forced": forced,
            "holds": natural is None and forced in (None, "schedule"),
        }
    stress_started = time.monotonic()
    row["stress"] = stress_row(scenario, backend, start_method, stress_runs, stress_seconds, stress_budget_left) \
        if stress_runs else None
    row["stress_seconds"] = round(time.monotonic() - stress_started, 3)
    explore_started = time.monotonic()
    if explore_runs and explore_available():
        try:
            row["explored"] = _explore_row(name, scenario, opts, max_schedules, fix_schedules)
        except Exception as exc:  # noqa: BLE001 -- shown in the row, and the row fails
            row["explored"] = {"error": f"{type(exc).__name__}: {exc}".splitlines()[0]}
    row["ok"] = (
        row["reproduced"] == repeat
        and "error" not in (row["explored"] or {})
        and all(f["holds"] for f in row["fixes"].values())
        and all(not f["failed"] for f in (row["explored"] or {}).get("fixes", {}).values())
        and not any(row["races"]["fixes"].values())
        and not any(f["failures"] for f in ((row["stress"] or {}).get("fixes") or {}).values())
    )
    row["explore_seconds"] = round(time.monotonic() - explore_started, 3)
    row["seconds"] = round(time.monotonic() - started, 3)
    return row


def watch_folder(state: Any) -> list[str]:
    """What the detector watches besides shared objects: the folder of a file
    scenario (its state is a dict with a ``folder``)."""
    return [state["folder"]] if isinstance(state, dict) and "folder" in state else []


def distinct_races(result: Any) -> int:
    """The number of distinct races a run reported: one per location and pair of lines."""
    return len({(r.location, *sorted((r.first.where, r.second.where))) for r in (result.races or [])})



def stress_row(
    scenario: Scenario, backend: str, start_method: str | None, runs: int, seconds: float = DEFAULT_STRESS_SECONDS,
    budget_left: bool = True,
) -> dict[str, Any]:
    """The buggy variant and every fix under ``races.stress``, as the scenario's
    ``options["stress"]`` declares (align, delays): up to ``runs`` real runs
    each, fewer once a variant has taken ``seconds`` (at least one run).  A
    declaration with ``why_not`` (the bug shows only under control, e.g. a run
    that would hang) is not stressed; one whose ``seconds`` (the real time of
    one run) exceeds ``seconds`` is skipped as too slow, and so is every
    scenario once ``budget_left`` is False (``races run --stress-budget``)."""
    from .stress_mode import stress_scenario, stress_settings

    conf = dict(scenario.options.get("stress") or {})
    settings = stress_settings(scenario, aligned=True, delayed=True, backend=backend)
    if settings["why_not"]:
        return {"why_not": settings["why_not"]}
    if float(conf.get("seconds", 0)) > seconds:
        return {"skipped": f"a real run takes {conf['seconds']:g}s"}
    if not budget_left:
        return {"skipped": "time budget"}
    method = start_method if backend == "process" else None

    def one(variant: str) -> dict[str, Any]:
        outcomes: dict[str, int] = {}
        deadline = time.monotonic() + seconds
        done = 0
        while done < runs and (done == 0 or time.monotonic() < deadline):
            result = stress_scenario(scenario, variant, runs=1, backend=backend, start_method=method,
                                     delayed=True, timeout=max(5.0, 2 * seconds))
            for outcome, count in result.outcomes.items():
                outcomes[str(outcome)] = outcomes.get(str(outcome), 0) + count
            done += result.runs
            if result.runs < 1 or "timeout" in result.outcomes:
                break
        failures = sum(n for o, n in outcomes.items() if o != "ok")
        return {"runs": done, "failures": failures, "outcomes": outcomes}

    bug = one("buggy")
    return {**bug, "rate": bug["failures"] / bug["runs"] if bug["runs"] else 0.0,
            "fixes": {fix: one(f"fixed:{fix}") for fix in scenario.fixes}}


def _explore_row(name: str, scenario: Scenario, opts: dict[str, Any], max_schedules: int,
                 fix_schedules: int | None = None) -> dict[str, Any]:
    # no preemption bound: dfs then takes the schedules a few deviations from the
    # default order first (delay bounding), so a bug one switch away is met within
    # a few dozen schedules even with ten tasks; a bound would spend the budget on
    # the many switch-free orders first
    settings = {"strategy": "dfs", "max_schedules": max_schedules, "preemption_bound": None, **opts}

    def one(variant: str, schedules: int = max_schedules) -> dict[str, Any]:
        result = explore(as_target(scenario, name, variant), **{**settings, "max_schedules": schedules})
        return {
            "failed": bool(result.failed),
            "kind": _kind(result),
            "schedules": getattr(result, "schedules", None),
            "exhaustive": bool(getattr(result, "exhaustive", False)),
            "races": len(getattr(result, "races", None) or []),
        }

    bug = one("buggy")
    per_fix = max_schedules if fix_schedules is None else fix_schedules
    return {**bug, "found": bug["kind"] == scenario.expect,
            "fixes": {f: one(f"fixed:{f}", per_fix) for f in scenario.fixes}}


def format_row(row: dict[str, Any]) -> list[str]:
    """The cells of one table row (see :data:`COLUMNS`)."""
    where = row["backend"] + (f"/{row['start_method']}" if row.get("start_method") else "")
    fixes = ", ".join(f"{fix} {'ok' if f['holds'] else 'FAILS'}" for fix, f in row["fixes"].items())
    explored = row.get("explored")
    if explored is None:
        found = verified = "skipped (time budget)" if row.get("explore_skipped") else "-"
    elif "error" in explored:
        found, verified = f"explore raised {explored['error']}"[:60], "-"
    else:
        count = explored["schedules"]
        runs = f"{count} schedule{'' if count == 1 else 's'}{', exhaustive' if explored['exhaustive'] else ''}"
        if explored["found"]:
            found = f"yes ({runs})"
        else:
            found = f"no: {explored['kind']} ({runs})" if explored["failed"] else f"no ({runs})"
        verified = ", ".join(
            f"{'FAILS' if f['failed'] else 'ok'} ({f['schedules']}{', exhaustive' if f['exhaustive'] else ''})"
            for f in explored["fixes"].values()
        )
    races_found = row.get("races") or {"buggy": 0, "fixes": {}}
    flagged = f"{races_found['buggy']}" + (
        f"; fixes {', '.join(str(n) for n in races_found['fixes'].values())}" if races_found["fixes"] else ""
    )
    bug = f"{row['reproduced']}/{row['runs']} {row['expect']}"
    return [row["scenario"], where, bug, fixes, found, verified, flagged, format_stress(row),
            f"{row['seconds']:.1f}s"]


def format_stress(row: dict[str, Any]) -> str:
    """The stress cell: the bug's real failures over runs, then each fix's."""
    stress = row.get("stress")
    if stress is None:
        return row.get("stress_skipped") or "-"
    if "why_not" in stress:
        return "control only"
    if "skipped" in stress:
        return f"skipped ({stress['skipped']})"
    fixes = ", ".join(f"{f['failures']}/{f['runs']}" for f in stress["fixes"].values())
    return f"{stress['failures']}/{stress['runs']}; fixes {fixes}"


COLUMNS = [
    "scenario", "backend", "bug reproduced", "fixes hold", "found by exploration",
    "fix verified (schedules, exhaustive)", "races flagged (bug; fixes)", "stress failures (bug; fixes)", "time",
]


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    cells = [COLUMNS] + [format_row(r) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def to_json(rows: Sequence[dict[str, Any]]) -> str:
    return json.dumps(list(rows), indent=2, ensure_ascii=False)


# -- docs/scenarios.md ---------------------------------------------------------
def _stress_doc(scenario: Scenario) -> str:
    conf = dict(scenario.options.get("stress") or {})
    if not conf:
        return "not declared"
    why_not = conf.get("why_not")
    if isinstance(why_not, str) and why_not:
        return f"not stressed: {why_not}"
    if conf.get("hangs"):
        return (f"{conf['hangs']} hangs a real run: on processes stress shows it as a timeout (stacks dumped, "
                "processes killed); not stressed on threads (a stuck thread cannot be killed)")
    align = f"aligned at `{conf['align']}`" if conf.get("align") else "unaligned"
    delays = ", ".join(f"`{k}` {v:g}s" for k, v in (conf.get("delays") or {}).items())
    slow = f"; a real run takes {conf['seconds']:g}s" if conf.get("seconds") else ""
    only = "".join(f"; not stressed on {backend}s: {why}" for backend, why in (why_not or {}).items())
    return f"real runs, {align}{', delays ' + delays if delays else ''}{slow}{only}"


def docs_path() -> Path:
    return Path(catalogue_module().__file__).resolve().parent.parent / "docs" / "scenarios.md"


def render_docs() -> str:
    """``docs/scenarios.md``, generated from the scenario modules."""
    parts = [
        "# The scenario catalogue",
        "",
        "Generated by `races docs` from the modules in `scenarios/`; do not edit by hand.",
        "Each scenario's bug is forced by its schedule; `races run NAME` checks that it",
        "reproduces and that its fixes hold, `races show NAME` prints its code and a live report.",
        "",
    ]
    names = scenario_names()
    parts += [f"- [`{n}`](#{n}): {load_scenario(n).summary}" for n in names] + [""]
    for name in names:
        scenario = load_scenario(name)
        story = scenario.doc.splitlines()[1:]
        parts += [f"## {name}", "", f"**{scenario.summary}**", *story, ""]
        parts += [
            f"- Forcing schedule: `{json.dumps(list(scenario.schedule), ensure_ascii=False)}`",
            f"- Expected failure kind: `{scenario.expect}`",
            f"- Fixes: {', '.join(f'`{f}`' for f in scenario.fixes)}",
            f"- Backends: {', '.join(scenario.backends)}",
            f"- Under `races.stress`: {_stress_doc(scenario)}",
            f"- Source: [`scenarios/{name}.py`](../scenarios/{name}.py)",
            "",
        ]
    return "\n".join(parts).rstrip() + "\n"
