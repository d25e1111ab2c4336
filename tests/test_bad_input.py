"""Bad input gets a clear error naming what is wrong."""
from __future__ import annotations

import pytest

import races
from tests import sample_tasks as st


def test_unknown_task_in_schedule():
    with pytest.raises(races.ScheduleError, match=r"step 2 't3:read' names unknown task 't3'.*t0, t1"):
        races.run(st.counter_setup, [st.increment] * 2, schedule=["t0", "t3:read"])


def test_unknown_task_suggests_the_close_name():
    with pytest.raises(races.ScheduleError, match=r"did you mean 'alice'"):
        races.run(st.counter_setup, {"alice": st.increment}, schedule=["alcie"])


@pytest.mark.parametrize("step", ["", "t0:", ":read", "t0:read:again", 3, None, ["t0"]])
def test_malformed_step(step):
    with pytest.raises(races.ScheduleError, match=r"schedule step 1"):
        races.run(st.counter_setup, [st.increment], schedule=[step])


def test_schedule_must_be_a_list():
    with pytest.raises(races.ScheduleError, match="list of steps"):
        races.run(st.counter_setup, [st.increment], schedule="t0:read")


def test_unknown_point_is_named_with_the_points_seen():
    result = races.run(st.counter_setup, [st.increment] * 2, schedule=["t0:raed"])
    assert result.failure.kind == "schedule"
    message = result.failure.message
    assert "Unknown point 'raed'" in message
    assert "did you mean 'read'" in message
    assert "finished without reaching a point 'raed'" in message


def test_point_never_reached_by_a_finished_task():
    result = races.run(st.counter_setup, [st.increment] * 2, schedule=["t0", "t0", "t0", "t0:read"])
    assert result.failure.kind == "schedule"
    assert "task 't0' has finished" in result.failure.message


def test_unpicklable_target_under_spawn_names_the_task():
    def local_task(state):
        pass

    with pytest.raises(races.TaskError, match=r"task 'inner'.*'spawn' process.*module level"):
        races.run(st.none_setup, {"inner": local_task}, backend="process", start_method="spawn")


def test_setup_that_raises():
    with pytest.raises(races.SetupError, match=r"setup\(\) raised OSError: no such ticket file"):
        races.run(st.setup_raises, [st.increment])


@pytest.mark.parametrize(
    "tasks, message",
    [
        ({}, "empty"),
        ({"a:b": st.increment}, "invalid"),
        ({"a": 3}, "not callable"),
        ("t0", "dict of name"),
    ],
)
def test_bad_tasks(tasks, message):
    with pytest.raises(races.TaskError, match=message):
        races.run(st.counter_setup, tasks)


def test_bad_backend_and_start_method():
    with pytest.raises(ValueError, match="backend must be one of"):
        races.run(st.counter_setup, [st.increment], backend="green")
    with pytest.raises(ValueError, match="start_method must be one of"):
        races.run(st.counter_setup, [st.increment], backend="process", start_method="clone")
    with pytest.raises(ValueError, match="timeout"):
        races.run(st.counter_setup, [st.increment], timeout=0)


def test_malformed_token():
    with pytest.raises(races.ReplayError, match="not a races replay token"):
        races.replay("garbage", st.counter_setup, [st.increment])


def test_token_of_other_tasks_is_refused():
    recorded = races.run(st.counter_setup, [st.increment, st.increment], schedule=["t0:read", "t1:read"])
    with pytest.raises(races.ReplayError, match="changed"):
        races.replay(recorded.token, st.counter_setup, [st.just_points, st.just_points])


def test_token_with_too_few_choices_is_refused():
    recorded = races.run(st.counter_setup, [st.increment])
    with pytest.raises(races.ReplayError, match="do(es)? not match|needs more"):
        races.replay(recorded.token, st.counter_setup, [st.just_points])


def test_bad_point_name():
    def bad(state):
        races.point("a:b")

    result = races.run(st.none_setup, [bad])
    assert result.failure.kind == "exception"
    assert "point name 'a:b' is invalid" in result.failure.message
