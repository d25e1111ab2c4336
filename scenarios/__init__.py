"""The scenario catalogue: one module per concurrency pattern from the notes.

Each module starts with the story (the pattern, the notes' own term, what goes
wrong and why, the fix) and defines ``SCENARIO``, a :class:`races.Scenario`.
"""
from __future__ import annotations

import importlib

NAMES: list[str] = [
    "ticket_oversell",
    "manager_lost_update",
    "double_acquire",
    "lock_not_shared",
    "torn_read",
    "lock_granularity",
    "lock_order_inversion",
    "interleaved_output",
    "queue_full",
    "queue_empty_get",
    "empty_check_race",
    "consumer_count_mismatch",
    "daemon_killed",
    "daemon_children",
    "manager_gone",
    "early_read",
    "join_before_drain",
]


def load(name: str):  # type: ignore[no-untyped-def]
    """The ``SCENARIO`` of one catalogue module; ValueError for an unknown name."""
    if name not in NAMES:
        raise ValueError(f"unknown scenario {name!r}; the catalogue has: {', '.join(NAMES)}")
    return importlib.import_module(f"scenarios.{name}").SCENARIO


def catalogue() -> dict[str, object]:
    return {name: load(name) for name in NAMES}
