"""Latency of a forced run per backend and start method, beside the natural
failure rate of the same buggy code run without control, and where the time
goes (process start, Manager start, handoffs).

    python bench/bench_runtime.py            # 50 runs each (the README table)
    python bench/bench_runtime.py --quick    # a smoke run for tox -e bench
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import races  # noqa: E402
import scenarios  # noqa: E402
from bench._uncontrolled import run_free  # noqa: E402
from races._core import template  # noqa: E402

MODES = [("thread", "fork"), ("process", "fork"), ("process", "forkserver"), ("process", "spawn")]


def median_ms(fn, runs: int) -> float:
    fn()  # warm up (templates, imports)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def _setup():
    return None


def _points(state, n=200):
    for _ in range(n):
        races.point("p")


def _nothing(state):
    pass


def breakdown(runs: int) -> None:
    print("\nwhere the time goes (median ms)")
    print(f"{'':<22}{'fork':>10}{'forkserver':>12}{'spawn':>10}")
    rows = {"start 10 task procs": [], "Manager start+stop": [], "handoff (per step)": []}
    for method in ("fork", "forkserver", "spawn"):
        ctx = multiprocessing.get_context(method)
        rows["start 10 task procs"].append(median_ms(
            lambda: races.run(_setup, [_nothing] * 10, backend="process", start_method=method), runs))

        def manager():
            m = ctx.Manager()
            m.dict()
            m.shutdown()

        rows["Manager start+stop"].append(median_ms(manager, max(5, runs // 5)))
        one = median_ms(lambda: races.run(_setup, [_nothing], backend="process", start_method=method), runs)
        many = median_ms(lambda: races.run(_setup, [_points], backend="process", start_method=method), runs)
        rows["handoff (per step)"].append((many - one) / 200)
    for name, values in rows.items():
        print(f"{name:<22}" + "".join(f"{v:>10.3f}  " for v in values))
    one = median_ms(lambda: races.run(_setup, [_nothing]), runs)
    many = median_ms(lambda: races.run(_setup, [_points]), runs)
    print(f"thread backend: one task {one:.3f} ms, handoff {(many - one) / 200 * 1000:.1f} µs per step")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="few runs: a smoke test of the bench")
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    runs = 5 if args.quick else args.runs
    print(f"forced-run latency, median of {runs} runs (ms); natural = buggy code without control, "
          f"failures / {runs} runs")
    print(f"{'scenario':<22}{'backend':<20}{'forced ms':>10}{'bug n/n':>9}{'natural':>10}")
    for name in ("ticket_oversell", "manager_lost_update"):
        sc = scenarios.load(name)
        for backend, method in MODES:
            failures = []

            def forced():
                failures.append(sc.run("buggy", backend=backend, start_method=method).failed)

            ms = median_ms(forced, runs)
            natural = sum(run_free(sc, "buggy", backend, method) for _ in range(runs))
            label = backend if backend == "thread" else f"process/{method}"
            print(f"{name:<22}{label:<20}{ms:>10.2f}{f'{sum(failures)}/{len(failures)}':>9}"
                  f"{f'{natural}/{runs}':>10}")
    breakdown(runs)
    template.shutdown()


if __name__ == "__main__":
    main()
