"""Fixtures the tests share: ``backend`` (see :mod:`tests.backends`)."""
from __future__ import annotations

from tests.backends import backend  # noqa: F401 - a fixture, found by pytest here
