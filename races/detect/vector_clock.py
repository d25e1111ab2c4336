"""Vector clocks and epochs (FastTrack, Flanagan & Freund 2009).

A vector clock is a plain ``list`` of ints indexed by task id (it grows as
tasks appear); an epoch is ``(tid, clock)``: one component, enough to
remember a single write or a single read.  ``epoch ≤ vc`` is one comparison.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

VC = List[int]
Epoch = Tuple[int, int]


def new(size: int = 0) -> VC:
    return [0] * size


def get(vc: Sequence[int], tid: int) -> int:
    return vc[tid] if tid < len(vc) else 0


def join_into(target: VC, other: Sequence[int]) -> None:
    """``target := target ⊔ other``, in place."""
    n = len(other)
    if len(target) < n:
        target.extend([0] * (n - len(target)))
    for i in range(n):
        v = other[i]
        if v > target[i]:
            target[i] = v


def tick(vc: VC, tid: int) -> None:
    if len(vc) <= tid:
        vc.extend([0] * (tid + 1 - len(vc)))
    vc[tid] += 1


def leq(a: Sequence[int], b: Sequence[int]) -> bool:
    """``a ⊑ b``: every component of ``a`` is at most ``b``'s."""
    return all(v <= get(b, i) for i, v in enumerate(a))


def epoch_before(tid: int, clock: int, vc: Sequence[int]) -> bool:
    """The access at epoch ``clock@tid`` happened before a task whose clock is ``vc``."""
    return clock <= (vc[tid] if tid < len(vc) else 0)
