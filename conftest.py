"""Settings for this repository's own tests (not shipped with the package).

Every test of the repo gets the races leak check: a test that leaves a child
process or a thread behind fails, and the leftover is killed.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytest_plugins = ["pytester"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "slow: a long acceptance loop (the catalogue 100 times on processes, the proofs); "
        "tox runs these on the newest Python only",
    )


@pytest.fixture(autouse=True)
def _leak_check_every_test(races_leak_check: Any) -> Iterator[None]:
    yield
