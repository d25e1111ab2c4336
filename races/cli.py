"""The ``races`` command line; the work is done in :mod:`races.catalogue`."""
from __future__ import annotations

import argparse
import inspect
import sys
from collections.abc import Sequence

DESCRIPTION = """\
races: deterministic concurrency tests for Python threads and multiprocessing.

The catalogue (scenarios/) holds one concurrency bug per module, with its fixes
and the schedule that forces it.  'races list' names them, 'races show NAME'
tells the story, prints the code and runs the bug, 'races run' checks every
bug still reproduces and every fix holds.

For your own code, 'races explore MODULE:OBJECT', 'races replay TOKEN
MODULE:OBJECT' and 'races stress MODULE:OBJECT' import MODULE (the current directory is on the path) and take
its attribute OBJECT, which is either a races.Scenario, or a dict or namespace
(a class, a SimpleNamespace, a module) holding 'setup' (a callable returning
the shared state), 'tasks' (a dict of name -> callable taking the state, or a
list of callables) and optionally 'invariant' and 'teardown' (callables taking
the state).  For example, in cases.py:

    CASE = {"setup": make_state, "tasks": {"a": buy, "b": buy}, "invariant": one_sold}

then: races explore cases:CASE

Exit status: 0 all is well, 1 a check failed (a bug did not reproduce, a fix
did not hold, an exploration or a replay found a failure, docs are stale),
2 bad input.
"""


DEFAULT_MAX_SCHEDULES = 100  # finds every catalogue bug (the first few dozen schedules); fixes get this many
DEFAULT_PROCESS_SCHEDULES = 10  # a fix's exploration on processes (a run there is ~10x a thread run)
DEFAULT_EXPLORE_BUDGET = 30.0
DEFAULT_STRESS_RUNS = 10
DEFAULT_STRESS_BUDGET = 10.0


def _backend_args(p: argparse.ArgumentParser, choices: Sequence[str], default: str) -> None:
    p.add_argument("--backend", choices=choices, default=default, help=f"default: {default}")
    p.add_argument(
        "--start-method", choices=["spawn", "forkserver", "fork"], default=None,
        help="for the process backend (default: forkserver where available, else spawn)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="races", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    sub.add_parser("list", help="one line per catalogue scenario")

    p = sub.add_parser("show", help="a scenario's story, code and a live report of its forced bug")
    p.add_argument("name")
    _backend_args(p, ["thread", "process"], "thread")

    p = sub.add_parser("run", help="check that each bug reproduces and each fix holds")
    p.add_argument("names", nargs="*", metavar="NAME", help="scenarios to check (default: all)")
    _backend_args(p, ["thread", "process", "all"], "all")
    p.add_argument("--repeat", type=int, default=3, metavar="N", help="forced runs of each bug (default: 3)")
    p.add_argument("--max-schedules", type=int, default=DEFAULT_MAX_SCHEDULES, metavar="N",
                   help=f"schedules per exploration, when races.explore exists (default: {DEFAULT_MAX_SCHEDULES})")
    p.add_argument("--explore-budget", type=float, default=DEFAULT_EXPLORE_BUDGET, metavar="SECONDS",
                   help="stop exploring once this much time went to it; later rows show 'skipped' "
                   f"(default: {DEFAULT_EXPLORE_BUDGET:g})")
    p.add_argument("--process-schedules", type=int, default=DEFAULT_PROCESS_SCHEDULES, metavar="N",
                   help="schedules per fix's exploration on the process backend, where a run costs more (the "
                   f"bug's search there still gets --max-schedules; default: {DEFAULT_PROCESS_SCHEDULES}; "
                   "0: explore on threads only)")
    p.add_argument("--no-explore", action="store_true", help="skip the exploration columns")
    p.add_argument("--stress-runs", type=int, default=DEFAULT_STRESS_RUNS, metavar="N",
                   help="real parallel runs (races.stress, as each scenario's options['stress'] declares) of "
                   "the bug and of each fix; a variant stops early after 1s (default: "
                   f"{DEFAULT_STRESS_RUNS}; 0: no stress column)")
    p.add_argument("--stress-budget", type=float, default=DEFAULT_STRESS_BUDGET, metavar="SECONDS",
                   help="stop stressing once this much time went to it; later rows show 'skipped' "
                   f"(default: {DEFAULT_STRESS_BUDGET:g})")
    p.add_argument("--stress-processes", action="store_true",
                   help="stress on the process backend too (default: thread rows only)")
    p.add_argument("--json", action="store_true", help="print a JSON list, one object per scenario and backend")

    p = sub.add_parser("explore", help="explore the schedules of MODULE:OBJECT (needs races.explore)")
    p.add_argument("target", metavar="MODULE:OBJECT")
    _backend_args(p, ["thread", "process"], "thread")
    p.add_argument("--variant", default="buggy", help="for a Scenario: buggy (default) or fixed:NAME")
    p.add_argument("--strategy", default="dfs", help="default: dfs")
    p.add_argument("--max-schedules", type=int, default=1000, metavar="N", help="default: 1000")
    p.add_argument("--preemption-bound", type=int, default=None, metavar="N",
                   help="leave out schedules with more than N preemptions (default: none; with a bound, "
                   "'exhaustive' means every schedule within it)")

    p = sub.add_parser("replay", help="replay the run a token records, on MODULE:OBJECT")
    p.add_argument("token")
    p.add_argument("target", metavar="MODULE:OBJECT")
    _backend_args(p, ["thread", "process"], "thread")
    p.add_argument("--variant", default="buggy", help="for a Scenario: buggy (default) or fixed:NAME")

    p = sub.add_parser("stress", help="run MODULE:OBJECT for real, in parallel, N times; count the outcomes")
    p.add_argument("target", metavar="MODULE:OBJECT")
    _backend_args(p, ["thread", "process"], "thread")
    p.add_argument("--variant", default="buggy", help="for a Scenario: buggy (default) or fixed:NAME")
    p.add_argument("--runs", type=int, default=100, metavar="N", help="default: 100")
    p.add_argument("--align", default=None, metavar="POINT",
                   help="every task waits at races.point(POINT) on a real barrier (default: a Scenario's "
                        "declared alignment, else none)")
    p.add_argument("--delay", action="append", default=[], metavar="TASK:POINT=SECONDS",
                   help="a real sleep at a point, to widen a window (repeatable; POINT=SECONDS for every task)")
    p.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS",
                   help="per run (default: 5; a Scenario's bug declared to hang: 2 on processes)")
    p.add_argument("--stop-on-first", action="store_true", help="stop at the first failing run")
    p.add_argument("--show-output", action="store_true",
                   help="let the runs print to the terminal (default: kept, the first failing run's in the report)")

    p = sub.add_parser("docs", help="write docs/scenarios.md from the scenario modules")
    p.add_argument("--check", action="store_true", help="exit 1 if the file is not current; write nothing")
    return parser


def _error(message: str) -> int:
    print(f"races: error: {' '.join(str(message).split())}", file=sys.stderr)
    return 2


def _options(args: argparse.Namespace) -> dict:
    from .catalogue import run_options

    return run_options(args.backend, args.start_method)


def cmd_list(args: argparse.Namespace) -> int:
    from .catalogue import load_scenario, scenario_names

    names = scenario_names()
    width = max(map(len, names))
    for name in names:
        print(f"{name:<{width}}  {load_scenario(name).summary}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from .catalogue import forced_report, load_scenario

    scenario = load_scenario(args.name)
    module = sys.modules[scenario.setup.__module__]
    print(f"== {args.name}: the story ==\n\n{scenario.doc}\n")
    print(f"== the code: {module.__file__} ==\n\n{inspect.getsource(module)}")
    print(f"== the bug, forced by {list(scenario.schedule)!r} ==\n")
    print(forced_report(args.name, args.backend, args.start_method))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from . import catalogue

    if args.repeat < 1:
        return _error(f"--repeat must be at least 1, not {args.repeat}")
    for option in ("max_schedules", "process_schedules"):
        if getattr(args, option) < (1 if option == "max_schedules" else 0):
            least = 1 if option == "max_schedules" else 0
            return _error(f"--{option.replace('_', '-')} must be at least {least}, not {getattr(args, option)}")
    if args.stress_runs < 0:
        return _error(f"--stress-runs must be 0 or more, not {args.stress_runs}")
    names = args.names or catalogue.scenario_names()
    scenarios = [catalogue.load_scenario(n) for n in names]  # unknown names fail before any run
    backends = ["thread", "process"] if args.backend == "all" else [args.backend]
    jobs = [(s.name, b) for s in scenarios for b in backends if b in s.backends]
    if not args.no_explore and not catalogue.explore_available():
        print("races run: races.explore is not available: exploration columns show '-'", file=sys.stderr)
    rows = []
    spent = 0.0  # seconds spent exploring
    stressed = 0.0  # seconds spent stressing
    for i, (name, backend) in enumerate(jobs, start=1):
        print(f"races run: [{i}/{len(jobs)}] {name} ({backend}) ...", file=sys.stderr, end=" ", flush=True)
        explore = not args.no_explore and (backend == "thread" or args.process_schedules > 0)
        within_budget = spent < args.explore_budget
        stress = args.stress_runs > 0 and (backend == "thread" or args.stress_processes)
        stress_within_budget = stressed < args.stress_budget
        row = catalogue.check(
            name, backend, args.start_method, args.repeat, args.max_schedules, explore and within_budget,
            stress_runs=args.stress_runs if stress else 0, stress_budget_left=stress_within_budget,
            fix_schedules=args.process_schedules if backend == "process" else None,
        )
        spent += row["explore_seconds"]
        stressed += row["stress_seconds"]
        row["explore_skipped"] = explore and not within_budget and catalogue.explore_available()
        if args.stress_runs > 0 and row["stress"] is None:
            row["stress_skipped"] = "threads only"
        print(f"{'ok' if row['ok'] else 'FAILED'} in {row['seconds']:.1f}s", file=sys.stderr, flush=True)
        rows.append(row)
    failed = [r for r in rows if not r["ok"]]
    if args.json:
        print(catalogue.to_json(rows))
    else:
        print(catalogue.format_table(rows))
        total = sum(r["seconds"] for r in rows)
        verdict = f"{len(failed)} FAILED: " + ", ".join(f"{r['scenario']} ({r['backend']})" for r in failed) \
            if failed else "all as expected"
        print(f"\n{len(rows)} checks in {total:.1f}s: {verdict}")
    return 1 if failed else 0


def cmd_explore(args: argparse.Namespace) -> int:
    from .catalogue import explore, load_target, replay_command

    target = load_target(args.target, args.variant)
    result = explore(
        target, strategy=args.strategy, max_schedules=args.max_schedules,
        preemption_bound=args.preemption_bound, **_options(args),
    )
    if result.failed:  # the token of an exploration's failing run replays it
        result.replay_command = replay_command(args.target, result, args.variant)
    print(result.report())
    return 1 if result.failed else 0


def cmd_replay(args: argparse.Namespace) -> int:
    from . import ReplayError
    from .catalogue import load_target, replay, replay_command

    target = load_target(args.target, args.variant)
    try:
        result = replay(args.token, target, **_options(args))
    except (ReplayError, ValueError) as exc:
        return _error(str(exc))
    result.replay_command = replay_command(args.target, result, args.variant)
    print(result.report())
    return 1 if result.failed else 0


def _delays(items: Sequence[str]) -> dict:
    from .catalogue import TargetError

    delays = {}
    for item in items:
        key, sep, seconds = item.rpartition("=")
        try:
            delays[key] = float(seconds)
        except ValueError:
            raise TargetError(f"--delay {item!r} is not TASK:POINT=SECONDS (or POINT=SECONDS)") from None
        if not sep or not key:
            raise TargetError(f"--delay {item!r} is not TASK:POINT=SECONDS (or POINT=SECONDS)")
    return delays


def cmd_stress(args: argparse.Namespace) -> int:
    from .catalogue import as_target, load_object
    from .scenario import Scenario
    from .stress_mode import stress, stress_scenario

    obj = load_object(args.target)
    target = as_target(obj, args.target, args.variant)  # a bad variant or object: TargetError, exit 2
    if args.runs < 1:
        return _error("--runs must be at least 1")
    delays = _delays(args.delay)
    common = {"runs": args.runs, "timeout": args.timeout, "stop_on_first": args.stop_on_first,
              "capture_output": not args.show_output, **_options(args)}
    try:
        if isinstance(obj, Scenario):  # what it declares for stress on this backend, unless overridden
            given = {"align": args.align, "delays": delays} if args.align is not None or delays else {}
            result = stress_scenario(obj, args.variant, **given, **common)
        else:
            result = stress(target.setup, target.tasks, target.invariant, align=args.align, delays=delays,
                            teardown=target.teardown, **common)
    except ValueError as exc:
        return _error(str(exc))
    print(result.report())
    return 1 if result.failures else 0


def cmd_docs(args: argparse.Namespace) -> int:
    from .catalogue import docs_path, render_docs

    path, text = docs_path(), render_docs()
    current = path.read_text(encoding="utf-8") if path.exists() else None
    if args.check:
        if current != text:
            print(f"races docs: {path} is not current; run: races docs", file=sys.stderr)
            return 1
        print(f"races docs: {path} is current")
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(f"races docs: wrote {path}")
    return 0


COMMANDS = {
    "list": cmd_list, "show": cmd_show, "run": cmd_run,
    "explore": cmd_explore, "replay": cmd_replay, "stress": cmd_stress, "docs": cmd_docs,
}


def main(argv: list[str] | None = None) -> int:
    from .catalogue import TargetError

    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except TargetError as exc:
        return _error(str(exc))
