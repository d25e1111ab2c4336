"""What the primitive tests share: the two backends, the leak check after
each test, and ``outcome`` (a call's return value or exception, to compare a
controlled primitive with CPython's)."""
from __future__ import annotations

import pytest

from tests.leaks import task_processes, task_threads

BACKENDS = [
    pytest.param(("thread", None), id="thread"),
    pytest.param(("process", "forkserver"), id="process-forkserver"),
]


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Run options for each backend; afterwards, no task thread or process is left."""
    name, method = request.param
    yield {"backend": name, "start_method": method}
    assert task_threads() == []
    assert task_processes() == []  # services (templates, races.manager()) are not tasks


def outcome(fn, *args, **kwargs):
    try:
        return ("ok", fn(*args, **kwargs))
    except Exception as exc:  # noqa: BLE001 - the outcome is what we compare
        return ("raise", type(exc).__name__, str(exc))
