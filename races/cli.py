"""The ``races`` command line."""
from __future__ import annotations

import sys


def main(argv=None) -> int:  # type: ignore[no-untyped-def]
    print("races: command line not built yet", file=sys.stderr)
    return 2
