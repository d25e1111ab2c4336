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
import threading
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


def _skip_sleep(seconds):
    pass


def plain_run(sc, backend: str, method: str) -> None:
    """The same work without races: ``setup()``, then each buggy task in a
    fresh thread (or a ``method`` process), one after the other, ``time.sleep``
    skipped, then the invariant.  What plain Python pays for the scenario's
    own work (threads, processes, files, Manager connections), to read the
    forced column against."""
    state = sc.setup()
    real_sleep, time.sleep = time.sleep, _skip_sleep
    try:
        for task in sc.tasks_for("buggy").values():
            if backend == "thread":
                worker = threading.Thread(target=task, args=(state,))
            else:
                worker = multiprocessing.get_context(method).Process(target=task, args=(state,))
            worker.start()
            worker.join()
        try:
            sc.invariant(state)
        except AssertionError:
            pass
    finally:
        time.sleep = real_sleep
        if sc.teardown:
            sc.teardown(state)


def _points(state, n=200):
    for _ in range(n):
        races.point("p")


def _nothing(state):
    pass


def _fork_exit() -> None:
    """The kernel's part alone: fork this process, the child exits at once, reap it."""
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)


def breakdown(runs: int) -> None:
    """Where a process run's time goes.  Under fork every task is a fork of
    this (the controller's) process, started when the run starts; under
    forkserver and spawn it is a child of the warm template, forked while the
    previous run went on (see races/_core/template.py), so a run pays for its
    boot (unpickling the payload, binding the agent) and its exit, not its fork.
    The last row is the kernel's floor under fork: forking this process and
    reaping the child, with nothing run in between."""
    print("\nwhere the time goes (median ms)")
    print(f"{'':<26}{'fork':>10}{'forkserver':>12}{'spawn':>10}")
    rows: dict = {"run of 1 no-op task": [], "each further task": [], "handoff (per step)": [],
                  "Manager start+stop": []}
    for method in ("fork", "forkserver", "spawn"):
        ctx = multiprocessing.get_context(method)
        one = median_ms(lambda: races.run(_setup, [_nothing], backend="process", start_method=method), runs)
        ten = median_ms(lambda: races.run(_setup, [_nothing] * 10, backend="process", start_method=method), runs)
        many = median_ms(lambda: races.run(_setup, [_points], backend="process", start_method=method), runs)
        rows["run of 1 no-op task"].append(one)
        rows["each further task"].append((ten - one) / 9)
        rows["handoff (per step)"].append((many - one) / 200)

        def manager():
            m = ctx.Manager()
            m.dict()
            m.shutdown()

        rows["Manager start+stop"].append(median_ms(manager, max(5, runs // 5)))
    for name, values in rows.items():
        print(f"{name:<26}" + "".join(f"{v:>10.3f}  " for v in values))
    print(f"{'fork + exit, kernel only':<26}{median_ms(_fork_exit, runs):>10.3f}")
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
    print("plain = the same work without races: fresh threads/processes one after the other, "
          "sleeps skipped (spawn/forkserver: median of a tenth of the runs)")
    print(f"{'scenario':<22}{'backend':<20}{'forced ms':>10}{'plain ms':>10}{'bug n/n':>9}{'natural':>10}")
    for name in ("ticket_oversell", "manager_lost_update"):
        sc = scenarios.load(name)
        for backend, method in MODES:
            failures = []

            def forced():
                failures.append(sc.run("buggy", backend=backend, start_method=method).failed)

            ms = median_ms(forced, runs)
            slow = backend == "process" and method != "fork"  # each child imports this script: ~150 ms
            plain = median_ms(lambda: plain_run(sc, backend, method), max(3, runs // 10) if slow else runs)
            natural = sum(run_free(sc, "buggy", backend, method) for _ in range(runs))
            label = backend if backend == "thread" else f"process/{method}"
            print(f"{name:<22}{label:<20}{ms:>10.2f}{plain:>10.2f}{f'{sum(failures)}/{len(failures)}':>9}"
                  f"{f'{natural}/{runs}':>10}")
    breakdown(runs)
    template.shutdown()


if __name__ == "__main__":
    main()
