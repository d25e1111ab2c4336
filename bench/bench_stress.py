"""How often each catalogue bug shows up when its buggy tasks run for real
(``races.stress``: real threads or processes, real primitives), beside the
controlled run that shows it every time.

Columns, per scenario and backend: the failure rate over ``--runs`` runs
``natural`` (no alignment, no delay), ``delay`` (a real sleep of
``races.stress.DEFAULT_DELAY`` at the ``races.point`` its forcing schedule
names), ``aligned`` (every task meets at that point), ``aligned+delay``, and
``controlled`` (``scenario.run``:
the forcing schedule, one run, deterministic).  ``-`` means the scenario has
no ``races.point`` to align or delay at (its window is a sleep, a lock or a
Manager call, which stress leaves real).  A bug that hangs a real run (its
scenario declares ``hangs``) shows as a timeout on processes (1 s a run here,
the processes killed) and is ``(control only)`` on threads: a stuck thread
cannot be killed.
A scenario whose real run sleeps for seconds (``interleaved_output``: the
notes' ``time.sleep(3)``) runs with ``sleep_scale=0.01`` (its sleeps a
hundredfold shorter, for real); ``--real-sleeps`` keeps them whole.

    python bench/bench_stress.py            # 20 runs per cell (minutes: task processes boot for real)
    python bench/bench_stress.py --quick    # 3 runs per cell, a smoke run
    python bench/bench_stress.py --only ticket_oversell --runs 100
    python bench/bench_stress.py --fidelity --runs 5   # every fix must never fail, every bug must show
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import races
import scenarios
from races.stress_mode import fidelity, stress_scenario, stress_settings

SLEEP_SCALE = 0.01
MODES = [("natural", False, False), ("delay", False, True), ("aligned", True, False), ("aligned+delay", True, True)]


def cell(result) -> str:  # type: ignore[no-untyped-def]
    kinds = sorted(((n, k) for k, n in result.outcomes.items() if isinstance(k, str) and k != "ok"), reverse=True)
    top = f" {kinds[0][1]}" if kinds else ""
    stopped = "*" if result.runs < result.requested else ""
    return f"{result.rate:6.1%}{stopped}{top}"


def sleep_options(scenario, args) -> dict:  # type: ignore[no-untyped-def]
    """``sleep_scale=0.01`` for a scenario whose real run sleeps for seconds, unless --real-sleeps."""
    seconds = (scenario.options.get("stress") or {}).get("seconds", 0)
    return {"sleep_scale": SLEEP_SCALE} if seconds > 1 and not args.real_sleeps else {}


def controlled(scenario, backend: str) -> str:  # type: ignore[no-untyped-def]
    options = {k: v for k, v in scenario.options.items() if k != "stress"}
    result = races.run(scenario.setup, scenario.buggy, scenario.invariant, schedule=list(scenario.schedule),
                       teardown=scenario.teardown, **{**options, "backend": backend})
    if result.failure is None:
        return "  0.0% (passed!)"
    return f"{100.0 if result.failure.kind == scenario.expect else 0.0:5.1f}% {result.failure.kind}"


def check_fidelity(names, backends, runs: int, args) -> int:  # type: ignore[no-untyped-def]
    print(f"the fidelity check: every fix stressed {runs} times (aligned) must never fail; every bug that "
          f"stress can show must show within {args.bug_runs} aligned runs")
    print(f"{'scenario':<25}{'variant':<26}{'backend':<9}{'runs':>6}{'failures':>9}  outcomes / verdict")
    bad = 0
    for name in names:
        scenario = scenarios.load(name)
        timeout = args.timeout  # a fix does not hang: it may wait for real (a put's timeout=2)
        seconds = (scenario.options.get("stress") or {}).get("seconds", 0)
        n = runs
        if seconds > 1 and args.real_sleeps:  # a fix that serialises its tasks takes a multiple of this
            timeout = max(timeout, 4 * seconds)
            n = min(runs, 2)
        for row in fidelity(scenario, runs=n, bug_runs=args.bug_runs, backends=backends, timeout=timeout,
                            start_method=args.start_method, **sleep_options(scenario, args)):
            bad += not row.ok
            shown = row.note if row.skipped else f"{row.outcomes}"
            verdict = "" if row.ok else f"  <-- {row.verdict}"
            print(f"{name:<25}{row.variant:<26}{row.backend:<9}{row.runs:>6}{row.failures:>9}  {shown}{verdict}",
                  flush=True)
    races.shutdown()
    print("fidelity: " + (f"{bad} row(s) FAILED" if bad else "every fix held and every bug stress can show showed"))
    return 1 if bad else 0


def main(argv=None) -> int:  # type: ignore[no-untyped-def]
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 runs per cell")
    parser.add_argument("--runs", type=int, default=None, help="runs per cell (default 20, 3 with --quick)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per run (deadlocks: 1)")
    parser.add_argument("--backends", default="thread,process")
    parser.add_argument("--only", action="append", default=[], help="a scenario name (repeatable)")
    parser.add_argument("--start-method", default=None)
    parser.add_argument("--real-sleeps", action="store_true",
                        help="keep the scenarios' real sleeps whole (interleaved_output: 6 s a run)")
    parser.add_argument("--fidelity", action="store_true",
                        help="instead: the fidelity check (every fix stressed --runs times must not fail; every "
                        "bug stress can show must show within --bug-runs aligned runs); exit 1 otherwise")
    parser.add_argument("--bug-runs", type=int, default=1000,
                        help="with --fidelity: aligned runs a bug gets to show itself (default 1000)")
    args = parser.parse_args(argv)
    runs = args.runs or (3 if args.quick else 20)
    names = args.only or list(scenarios.NAMES)
    backends = [b for b in args.backends.split(",") if b]
    if args.fidelity:
        return check_fidelity(names, backends, runs, args)

    print(f"buggy-variant failure rate under races.stress, {runs} runs per cell "
          f"(python {sys.version.split()[0]}, {os.cpu_count()} CPUs)")
    header = f"{'scenario':<25}{'backend':<9}" + "".join(f"{m:<19}" for m, _, _ in MODES) + "controlled"
    print(header)
    print("-" * len(header))
    notes = []
    started = time.monotonic()
    for name in names:
        scenario = scenarios.load(name)
        # a bug declared to hang times out every run on processes: 1 s is plenty there
        timeout = 1.0 if (scenario.options.get("stress") or {}).get("hangs") else args.timeout
        slept = sleep_options(scenario, args)
        if slept:
            notes.append(f"{name}: real sleeps scaled by {SLEEP_SCALE} (--real-sleeps keeps them)")
        for backend in backends:
            if backend not in scenario.backends:
                continue
            row = f"{name:<25}{backend:<9}"
            settings = stress_settings(scenario, backend=backend)
            if settings["why_not"]:  # only control shows it: a real run would hang or say nothing
                notes.append(f"{name} {backend}: {settings['why_not']}")
                print(row + "".join(f"{'(control only)':<19}" for _ in MODES) + controlled(scenario, backend),
                      flush=True)
                continue
            for _mode, aligned, delayed in MODES:
                chosen = stress_settings(scenario, aligned, delayed, backend)
                if (aligned or delayed) and chosen["align"] is None and chosen["delays"] is None:
                    row += f"{'-':<19}"
                    continue
                result = stress_scenario(scenario, "buggy", runs=runs, backend=backend, aligned=aligned,
                                         delayed=delayed, timeout=timeout, start_method=args.start_method,
                                         **slept)
                row += f"{cell(result):<19}"
                if result.notes:
                    notes.extend(f"{name} {backend}: {n}" for n in result.notes)
            row += controlled(scenario, backend)
            print(row, flush=True)
    print(f"\n* = stopped early (a thread timed out and cannot be killed); took {time.monotonic() - started:.0f}s")
    for note in dict.fromkeys(notes):
        print(f"note: {note}")
    races.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
