"""The cost of a controlled operation against the raw primitive, per primitive
and backend (median), and the time from the moment the last runnable task
blocks to the deadlock report.

    python bench/bench_primitives.py            # the README table
    python bench/bench_primitives.py --quick    # a smoke run for tox -e bench
"""
from __future__ import annotations

import argparse
import os
import queue
import statistics
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import races  # noqa: E402
from races._core import template  # noqa: E402

OPS = 100


def _setup():
    return {"lock": races.Lock(), "rlock": races.RLock(), "sem": races.Semaphore(1),
            "event": races.Event(), "q": races.Queue(), "value": races.Value("i", 0)}


def lock_op(s):
    s["lock"].acquire()
    s["lock"].release()


def rlock_op(s):
    s["rlock"].acquire()
    s["rlock"].release()


def sem_op(s):
    s["sem"].acquire()
    s["sem"].release()


def event_op(s):
    s["event"].set()
    s["event"].clear()


def queue_op(s):
    s["q"].put(1)
    s["q"].get()


def value_op(s):
    s["value"].value = s["value"].value + 1


RAW = {
    "Lock acquire+release": (threading.Lock, lambda o: (o.acquire(), o.release())),
    "RLock acquire+release": (threading.RLock, lambda o: (o.acquire(), o.release())),
    "Semaphore acquire+release": (threading.Semaphore, lambda o: (o.acquire(), o.release())),
    "Event set+clear": (threading.Event, lambda o: (o.set(), o.clear())),
    "Queue put+get": (queue.Queue, lambda o: (o.put(1), o.get())),
    "Value read+write": (lambda: [0], lambda o: o.__setitem__(0, o[0] + 1)),
}
CONTROLLED = {
    "Lock acquire+release": lock_op,
    "RLock acquire+release": rlock_op,
    "Semaphore acquire+release": sem_op,
    "Event set+clear": event_op,
    "Queue put+get": queue_op,
    "Value read+write": value_op,
}


def _loop(op):
    def task(state):
        for _ in range(OPS):
            op(state)
    task.__name__ = f"loop_{op.__name__}"
    return task


# module-level loops, so spawn/forkserver tasks can import them
LOOPS = {name: _loop(op) for name, op in CONTROLLED.items()}
for _name, _task in LOOPS.items():
    globals()[_task.__name__] = _task
    _task.__qualname__ = _task.__name__


def nothing(state):
    pass


def median(fn, runs):
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def raw_cost(factory, op, runs):
    obj = factory()

    def many():
        for _ in range(OPS):
            op(obj)

    return median(many, runs) / OPS


# -- deadlock report latency -------------------------------------------------------------
def _stamp_path(state):
    return state["stamp"]


def deadlock_setup():
    fd, path = tempfile.mkstemp(prefix="races-bench-")
    os.close(fd)
    return {"lock": races.Lock("l"), "stamp": path}


def double_acquire(state):
    state["lock"].acquire()
    races.point("before_block")
    with open(state["stamp"], "w") as f:  # the moment the last runnable task blocks
        f.write(repr(time.monotonic()))
    state["lock"].acquire()


def deadlock_latency(backend, method, runs):
    samples = []
    for _ in range(runs):
        state_box = {}

        def setup():
            state_box["s"] = deadlock_setup()
            return state_box["s"]

        result = races.run(setup, [double_acquire], backend=backend, start_method=method)
        reported = time.monotonic()
        assert result.failure.kind == "deadlock"
        with open(state_box["s"]["stamp"]) as f:
            blocked = float(f.read())
        os.unlink(state_box["s"]["stamp"])
        samples.append(reported - blocked)
    return statistics.median(samples)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    runs = 3 if args.quick else args.runs
    modes = [("thread", None), ("process", "fork"), ("process", "forkserver")]
    print(f"controlled operation vs raw primitive, µs per operation (median of {runs} runs of {OPS} ops)")
    header = f"{'operation':<28}{'raw':>8}" + "".join(f"{b if m is None else b + '/' + m:>22}" for b, m in modes)
    print(header)
    for name, (factory, op) in RAW.items():
        raw = raw_cost(factory, op, runs) * 1e6
        cells = []
        for backend, method in modes:
            base = median(lambda: races.run(_setup, [nothing], backend=backend, start_method=method), runs)
            full = median(lambda: races.run(_setup, [LOOPS[name]], backend=backend, start_method=method), runs)
            per_op = (full - base) / OPS * 1e6
            cells.append(f"{per_op:>10.1f} ({per_op / raw:>6.0f}x)")
        print(f"{name:<28}{raw:>8.2f}" + "".join(f"{c:>22}" for c in cells))
    print("\nlast runnable task blocks -> deadlock report (median ms; targets: threads < 5, processes < 50)")
    for backend, method in modes:
        label = backend if method is None else f"{backend}/{method}"
        print(f"  {label:<20}{deadlock_latency(backend, method, runs) * 1000:>8.2f} ms")
    template.shutdown()


if __name__ == "__main__":
    main()
