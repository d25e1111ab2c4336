"""pytest plugin for races (entry point ``pytest11``); kept light: the engine
is imported only when a test uses it."""
from __future__ import annotations


def pytest_configure(config):  # type: ignore[no-untyped-def]
    config.addinivalue_line("markers", "races(**options): options for the races fixture")
