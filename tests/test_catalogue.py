"""The whole catalogue: every scenario's bug reproduces under its schedule
every time (100/100 in each backend: threads, and processes with forkserver
in the slow test; the first two scenarios get 100 per start method in
test_scenarios_forced.py),
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

RUNS = {"thread": 100, "process": 20}  # processes: 100 in the slow test below
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


PROCESS_CASES = [pytest.param(name, id=name) for name in scenarios.NAMES
                 if "process" in scenarios.load(name).backends]


@pytest.mark.slow
@pytest.mark.parametrize("name", PROCESS_CASES)
def test_bug_reproduces_100_times_on_processes(name):
    scenario = scenarios.load(name)
    kinds = [(r.failure.kind if r.failure else None) for r in
             (scenario.run("buggy", **_mode("process")) for _ in range(100))]
    assert kinds == [scenario.expect] * 100


@pytest.mark.parametrize("name, backend", CASES)
def test_every_fix_holds(name, backend):
    scenario = scenarios.load(name)
    for fix in scenario.fixes:
        natural = scenario.run(f"fixed:{fix}", schedule=[], **_mode(backend))
        assert natural.failure is None, natural.report()
        forced = scenario.run(f"fixed:{fix}", **_mode(backend))
        assert forced.failure is None or forced.failure.kind == "schedule", forced.report()


@pytest.mark.parametrize("name", scenarios.NAMES)
def test_scenario_declares_how_to_stress_it(name):
    """Issue 8: every scenario says how ``races.stress`` shows its bug for real
    (``align`` and ``delays``), that it hangs a real run (``hangs``: shown as
    a timeout on processes), or why only control shows it (``why_not``, for
    every backend or a dict per backend)."""
    scenario = scenarios.load(name)
    conf = scenario.options.get("stress")
    assert isinstance(conf, dict), f"{name} has no options['stress']"
    why_not = conf.get("why_not")
    if isinstance(why_not, str):
        assert len(why_not) > 20 and set(conf) <= {"why_not", "fix_limits"}
    elif "hangs" in conf:
        assert isinstance(conf["hangs"], str) and set(conf) <= {"hangs", "align", "delays", "fix_limits"}
    else:
        assert {"align", "delays"} <= set(conf) <= {"align", "delays", "seconds", "shows_as", "why_not", "fix_limits"}
        assert conf.get("shows_as", "invariant") in races.FAILURE_KINDS
        assert isinstance(conf["delays"], dict)
        assert why_not is None or (set(why_not) < set(scenario.backends)
                                   and all(len(why) > 20 for why in why_not.values()))
    assert set(conf.get("fix_limits", {})) <= set(scenario.backends)
    if scenario.expect in ("deadlock", "blocked"):
        assert "hangs" in conf, "a run that hangs cannot be stressed on threads: declare what hangs"


def test_the_stress_declaration_is_not_a_run_option(monkeypatch):
    import races.scenario

    seen = {}

    def fake_run(setup, tasks, invariant, **options):
        seen.update(options)

    monkeypatch.setattr(races.scenario, "run", fake_run)
    monkeypatch.setattr(races.scenario, "replay", lambda token, *a, **options: seen.update(options))
    scenario = scenarios.load("ticket_oversell")
    assert "stress" in scenario.options
    scenario.run("buggy", backend="thread")
    assert "stress" not in seen and seen["backend"] == "thread"
    seen.clear()
    scenario.replay("R1.x", backend="thread")
    assert "stress" not in seen and seen["backend"] == "thread"


STRESSED = [name for name in scenarios.NAMES
            if not any(k in scenarios.load(name).options["stress"] for k in ("why_not", "hangs"))
            and not scenarios.load(name).options["stress"].get("seconds")]


@pytest.mark.parametrize("name", STRESSED)
def test_declared_stress_shows_the_bug_and_no_fix_fails(name):
    """Under its declaration (aligned, delayed) the bug fails some of three real
    thread runs, and no fix ever does."""
    from races.stress_mode import stress_scenario

    scenario = scenarios.load(name)
    bug = stress_scenario(scenario, "buggy", runs=3, backend="thread", delayed=True)
    assert bug.failures >= 1, bug.report()
    for fix in scenario.fixes:
        fixed = stress_scenario(scenario, f"fixed:{fix}", runs=1, backend="thread", delayed=True)
        assert fixed.failures == 0, fixed.report()
