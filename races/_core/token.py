"""Replay tokens: a short string holding the choices of a run and a fingerprint
of the tasks and the sync points they passed.

Format: ``R1.<fingerprint>.<runs>`` where ``runs`` is ``index.count`` groups
(base 36) joined by ``-``; ``R1.3f2a9c01.0.4-1.2-0.3`` means task 0 four times,
task 1 twice, task 0 three times.  A model's answer ``k`` (a stale
``Queue.empty()``: :meth:`Strategy.choose_value`) is a group ``~k.count``,
held in the decoded list as ``-(k + 1)``.  Choices are made at sync-point level, so a
token stays valid across Python versions and backends.
"""
from __future__ import annotations

import re
import zlib
from typing import Iterable, List, Sequence, Tuple

from .errors import ReplayError

_TOKEN = re.compile(r"^R1\.([0-9a-f]{8})\.((?:~?[0-9a-z]+\.[0-9a-z]+)(?:-~?[0-9a-z]+\.[0-9a-z]+)*)?$")
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def _b36(n: int) -> str:
    if n == 0:
        return "0"
    out = []
    while n:
        n, r = divmod(n, 36)
        out.append(_DIGITS[r])
    return "".join(reversed(out))


def fingerprint(task_names: Sequence[str], steps: Iterable[Tuple[str, str]]) -> str:
    """CRC32 of the task names and the (task, sync point) sequence of a trace."""
    text = "\n".join(task_names) + "\n" + "|".join(f"{t}:{n}" for t, n in steps)
    return f"{zlib.crc32(text.encode('utf-8')) & 0xFFFFFFFF:08x}"


def merge(choices: Sequence[int], values: Sequence[Tuple[int, int]]) -> List[int]:
    """The task choices with the answers ``(position, k)`` of a run put in their
    place: answer ``k`` made after ``position`` task choices, as ``-(k + 1)``."""
    if not values:
        return list(choices)
    out: List[int] = []
    at = 0
    for position, k in values:
        out.extend(choices[at:position])
        at = max(at, position)
        out.append(-k - 1)
    out.extend(choices[at:])
    return out


def encode(choices: Sequence[int], fp: str) -> str:
    groups = []
    i = 0
    while i < len(choices):
        j = i
        while j < len(choices) and choices[j] == choices[i]:
            j += 1
        c = choices[i]
        groups.append(f"{_b36(c) if c >= 0 else '~' + _b36(-c - 1)}.{_b36(j - i)}")
        i = j
    return f"R1.{fp}." + "-".join(groups)


def decode(token: str) -> Tuple[List[int], str]:
    """Return ``(choices, fingerprint)``; raise :class:`ReplayError` when malformed."""
    if not isinstance(token, str):
        raise ReplayError(f"a replay token is a string like 'R1.3f2a9c01.0.4-1.2', not {token!r}")
    m = _TOKEN.match(token.strip())
    if not m:
        raise ReplayError(f"{token!r} is not a races replay token (expected 'R1.<8 hex>.<runs>')")
    choices: List[int] = []
    if m.group(2):
        for group in m.group(2).split("-"):
            idx, count = group.split(".")
            value = -int(idx[1:], 36) - 1 if idx.startswith("~") else int(idx, 36)
            choices.extend([value] * int(count, 36))
    return choices, m.group(1)
