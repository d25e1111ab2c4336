"""Exploration throughput and how fast each strategy finds each catalogue bug.

* schedules per second for an exhaustive dfs of 2 tasks x 5 sync points
  (targets: >= 5,000/s threads, >= 300/s processes on 2 cores; the median
  of five explorations after a warm-up, and the CPU each schedule costs), beside plain
  stress runs of the same code (real threads/processes, no control), and the
  floor of a process schedule without any harness (two forks, their
  messages, their exits);
* the schedules each strategy (dfs, pct, random) needs to reach the first
  bug of every catalogue scenario, without its forcing schedule.

    python bench/bench_explore.py            # the README table
    python bench/bench_explore.py --quick    # a smoke run for tox -e bench
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import races  # noqa: E402
import scenarios  # noqa: E402
from races._core import template  # noqa: E402


def five_points(state):
    for i in range(5):
        races.point(f"p{i}")


def nothing():
    return None


def _busy_cpu_seconds():
    """CPU time every core spent busy so far (Linux), or None."""
    try:
        with open("/proc/stat") as fh:
            fields = [int(v) for v in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def throughput(backend, method, cap, repeats):
    """Schedules, exhaustive, the median schedules/s of ``repeats`` explorations
    (after one warm-up: imports, the template, its first children) and the CPU
    time all cores spent per schedule (ms; every process: controller, tasks,
    template, exits)."""
    def explore(limit):
        return races.explore(nothing, [five_points, five_points], backend=backend, start_method=method,
                             stop_on_first=False, max_schedules=limit)

    explore(min(cap, 50))
    rates, cpu = [], []
    for _ in range(repeats):
        busy, start = _busy_cpu_seconds(), time.perf_counter()
        result = explore(cap)
        elapsed = time.perf_counter() - start
        rates.append(result.schedules / elapsed)
        if busy is not None:
            cpu.append((_busy_cpu_seconds() - busy) / result.schedules * 1e3)
    cpu_ms = statistics.median(cpu) if cpu else float("nan")
    return result.schedules, result.exhaustive, statistics.median(rates), cpu_ms


def stress_rate(backend, method, runs):
    start = time.perf_counter()
    races.stress(nothing, [five_points, five_points], runs=runs, backend=backend, start_method=method)
    return runs / (time.perf_counter() - start)


def process_floor(runs):
    """Schedules/s with no harness at all: per schedule, fork two children of
    this process (the task side's modules imported), exchange the 13 messages a
    5-point task exchanges with the controller, reap both.  A process-backend
    schedule cannot cost less than these two fresh processes: this is the
    floor the process rows are measured against."""
    import socket

    from races._core import patch_mode, worker  # noqa: F401 - what a task process holds

    def one():
        children = []
        for _ in range(2):
            ours, theirs = socket.socketpair()
            pid = os.fork()
            if pid == 0:
                ours.close()
                for _ in range(13):
                    theirs.send(b"s")
                    theirs.recv(1)
                os._exit(0)
            theirs.close()
            children.append((pid, ours))
        for pid, ours in children:
            for _ in range(13):
                ours.recv(1)
                ours.send(b"g")
            os.waitpid(pid, 0)
            ours.close()

    one()
    start = time.perf_counter()
    for _ in range(runs):
        one()
    return runs / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    cap = 60 if args.quick else 100_000
    repeats = 1 if args.quick else 5
    print("exhaustive dfs, 2 tasks x 5 sync points (every step dependent: 924 schedules);")
    print(f"schedules/s: median of {repeats} explorations after a warm-up; cpu: ms of CPU (all cores) per schedule")
    print(f"{'backend':<22}{'schedules':>10}{'exhaustive':>12}{'schedules/s':>13}{'cpu ms':>8}{'stress runs/s':>15}")
    for backend, method in (("thread", None), ("process", "fork"), ("process", "forkserver"), ("process", "spawn")):
        n, exhaustive, rate, cpu_ms = throughput(backend, method, cap if backend == "thread" else min(cap, 300),
                                                 repeats)
        stress = stress_rate(backend, method, 10 if args.quick else 50)
        label = backend if method is None else f"{backend}/{method}"
        print(f"{label:<22}{n:>10}{exhaustive!s:>12}{rate:>13.0f}{cpu_ms:>8.2f}{stress:>15.0f}")
    if hasattr(os, "fork"):
        floor = process_floor(30 if args.quick else 300)
        print(f"{'floor: 2 bare forks':<22}{'':>10}{'':>12}{floor:>13.0f}{'':>8}   (no harness: fork, 13 messages, reap)")
    print("\nschedules to the first bug, without the forcing schedule (thread backend)")
    strategies = ("dfs", "pct", "random")
    print(f"{'scenario':<26}" + "".join(f"{s:>10}" for s in strategies))
    for name in scenarios.NAMES:
        sc = scenarios.load(name)
        cells = []
        for strategy in strategies:
            result = races.explore(sc.setup, sc.buggy, sc.invariant, teardown=sc.teardown, strategy=strategy,
                                   max_schedules=100 if args.quick else 1000, shrink=False)
            cells.append(str(result.schedules) if result.failed else f">{result.schedules}")
        print(f"{name:<26}" + "".join(f"{c:>10}" for c in cells))
    template.shutdown()
    races.shutdown()


if __name__ == "__main__":
    main()
