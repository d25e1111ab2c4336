"""The whole catalogue: every scenario's bug reproduces under its schedule
every time (100/100 on threads, 20/20 on processes with forkserver; the
first two scenarios get 100 per start method in test_scenarios_forced.py),
and every fix holds: its natural run passes, and under the forcing schedule
it passes or reports the interleaving impossible (``schedule``)."""
from __future__ import annotations

import ast
import inspect
import multiprocessing
import pickle

import pytest

import races
import scenarios

RUNS = {"thread": 100, "process": 20}
PROCESS_METHOD = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


def _mode(backend):
    return {"backend": "process", "start_method": PROCESS_METHOD} if backend == "process" else {"backend": "thread"}


CASES = [
    pytest.param(name, backend, id=f"{name}-{backend}")
    for name in scenarios.NAMES
    for backend in scenarios.load(name).backends
]


@pytest.mark.parametrize("name", scenarios.NAMES)
def test_scenario_is_well_formed(name):
    scenario = scenarios.load(name)
    module = inspect.getmodule(scenario.setup)
    assert scenario.name == name == module.__name__.rsplit(".", 1)[-1]
    assert scenario.expect in races.FAILURE_KINDS and scenario.expect != "schedule"
    assert scenario.fixes and scenario.schedule
    assert set(scenario.backends) <= {"thread", "process"} and scenario.backends
    story = scenario.doc
    for part in ("The pattern.", "What goes wrong.", "The fix"):
        assert part in story, f"{name}'s story has no {part!r} paragraph"
    for variant in scenario.variants().values():
        for task in variant.values():
            pickle.dumps(task)  # module-level functions and partials only
    tree = ast.parse(inspect.getsource(module))
    code = inspect.getsource(module).splitlines()[tree.body[0].end_lineno:]
    assert len([line for line in code if line.strip() and not line.strip().startswith("#")]) <= 80


@pytest.mark.parametrize("name, backend", CASES)
def test_bug_reproduces_every_time(name, backend):
    scenario = scenarios.load(name)
    runs = RUNS[backend]
    results = [scenario.run("buggy", **_mode(backend)) for _ in range(runs)]
    kinds = [r.failure.kind if r.failure else None for r in results]
    assert kinds == [scenario.expect] * runs, next(r.report() for r in results if not r.failure or
                                                   r.failure.kind != scenario.expect)


@pytest.mark.parametrize("name, backend", CASES)
def test_every_fix_holds(name, backend):
    scenario = scenarios.load(name)
    for fix in scenario.fixes:
        natural = scenario.run(f"fixed:{fix}", schedule=[], **_mode(backend))
        assert natural.failure is None, natural.report()
        forced = scenario.run(f"fixed:{fix}", **_mode(backend))
        assert forced.failure is None or forced.failure.kind == "schedule", forced.report()
