"""Importing races (and its pytest plugin, loaded by every pytest run) is light."""
from __future__ import annotations

import subprocess
import sys

import races


def test_plugin_import_does_not_load_the_engine():
    code = (
        "import sys, races.plugin; "
        "heavy = [m for m in ('races._core.controller', 'races._core.runner', 'races.primitives', "
        "'multiprocessing.managers', 'hypothesis') if m in sys.modules]; "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_public_name_resolves():
    for name in races.__all__:
        assert getattr(races, name) is not None
    assert callable(races.stress) and races.stress.__module__ == "races.stress_mode"


def test_unknown_attribute_is_an_attribute_error():
    try:
        races.no_such_thing  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:
        raise AssertionError("races.no_such_thing resolved")
