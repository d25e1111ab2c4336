"""Overhead of the race detector: the same controlled runs with
``detect_races="report"`` and without, as a ratio (target ≤ 1.5×).

* the catalogue: every scenario variant, thread backend, serial schedule
  (file scenarios watch their folder in both runs, so both take the same steps);
* a microbenchmark: 10,000 accesses (races.shared reads and writes by two
  tasks, a lock every 10 accesses);
* the detector alone: µs per access step fed straight to ``on_step``.

    python bench/bench_detect.py            # best of 7 runs each, alternating
    python bench/bench_detect.py --quick    # best of 3
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from types import SimpleNamespace

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import races  # noqa: E402
import scenarios  # noqa: E402
from races._core.step import Step  # noqa: E402
from races.detect import Detector  # noqa: E402

ACCESSES = 10_000


def median_s(fn, runs: int) -> float:
    fn()  # warm up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def paired_s(plain_fn, detect_fn, runs: int) -> tuple:
    """Best-of-``runs`` times of both, measured alternately (a loaded machine
    slows both alike; the minimum is the least disturbed run)."""
    plain_fn()
    detect_fn()
    plain, detect = [], []
    for _ in range(runs):
        for fn, times in ((plain_fn, plain), (detect_fn, detect)):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return min(plain), min(detect)


def watch(state):
    return [state["folder"]] if isinstance(state, dict) and "folder" in state else []


def catalogue(runs: int) -> float:
    print(f"{'scenario variant':<44}{'plain ms':>10}{'detect ms':>11}{'ratio':>8}")
    plain_total = detect_total = 0.0
    for name in scenarios.NAMES:
        scenario = scenarios.load(name)
        for variant in scenario.variants():
            def once(mode, scenario=scenario, variant=variant):
                return scenario.run(variant, schedule=[], detect_races=mode, watch=watch, backend="thread")

            plain, detect = paired_s(lambda: once(False), lambda: once("report"), runs)
            plain_total += plain
            detect_total += detect
            print(f"{name + ' ' + variant:<44}{plain * 1000:>10.1f}{detect * 1000:>11.1f}{detect / plain:>7.2f}x")
    ratio = detect_total / plain_total
    print(f"{'catalogue (sum)':<44}{plain_total * 1000:>10.1f}{detect_total * 1000:>11.1f}{ratio:>7.2f}x")
    return ratio


def _setup():
    return SimpleNamespace(obj=races.shared(SimpleNamespace(x=0, y=0), "obj"), lock=races.Lock("L"))


def _worker(state, n=ACCESSES // 2):
    obj, lock = state.obj, state.lock
    for i in range(n // 10):
        with lock:
            for _ in range(5):
                obj.x = obj.x + 1  # a read and a write


def micro(runs: int) -> float:
    def once(mode):
        result = races.run(_setup, {"a": _worker, "b": _worker}, schedule=[], detect_races=mode)
        assert result.failure is None and not result.races

    plain, detect = paired_s(lambda: once(False), lambda: once("report"), runs)
    ratio = detect / plain
    print(f"\n{ACCESSES:,} accesses: plain {plain * 1000:.0f} ms ({plain / ACCESSES * 1e6:.1f} µs/access), "
          f"detect {detect * 1000:.0f} ms: {ratio:.2f}x")
    return ratio


def detector_alone(runs: int) -> None:
    steps = []
    for i in range(ACCESSES // 2):
        steps.append(("a" if i % 2 else "b", Step("lock", "acquire", "L", "L"), ("ok", True)))
        steps.append(("a" if i % 2 else "b", Step("shared", "write", "obj", "obj", "?", (".x", ())), ("ok", None)))
        steps.append(("a" if i % 2 else "b", Step("lock", "release", "L", "L"), ("ok", None)))

    def once():
        d = Detector()
        for task, step, reply in steps:
            d.on_step(task, step, reply)

    took = median_s(once, runs)
    print(f"detector alone: {took / len(steps) * 1e6:.2f} µs per step ({len(steps):,} steps)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 runs each instead of 7")
    args = parser.parse_args()
    runs = 3 if args.quick else 7
    cat = catalogue(runs)
    mic = micro(runs)
    detector_alone(runs)
    print(f"\noverhead: catalogue {cat:.2f}x, microbenchmark {mic:.2f}x (target <= 1.5x)")


if __name__ == "__main__":
    main()
