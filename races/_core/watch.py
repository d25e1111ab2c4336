"""File watching for the race detector: ``races.run(..., watch=[folder])``.

While a run with ``watch`` is active, ``open()`` (``builtins.open`` and
``io.open``) and ``os.replace`` of a path under a watched directory become
steps of kind ``file`` of the calling task: ``read`` (mode ``r``), ``write``
(``a``, ``x``, ``+``), ``truncate`` (``w``) and ``replace`` (``os.replace``
onto the path: an atomic write, which readers never see half-done).  Calls
from outside the tasks (setup, the invariant, other threads) are untouched.
The patches are removed when the run ends.  In the process backend each
task process of the run watches the same roots while its target runs
(children that tasks start are not watched).

``watch`` is a list of directories (or files), or a callable that receives
the state ``setup()`` returned and gives that list (scenarios whose setup
creates the folder: ``watch=lambda state: [state["folder"]]``).
"""
from __future__ import annotations

import builtins
import io
import os
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

from .agent import current
from .model import Model, register
from .step import caller_stack

Watch = Union[None, Sequence[Any], Callable[[Any], Sequence[Any]]]

_real_open = builtins.open
_real_io_open = io.open
_real_replace = os.replace
_roots: Tuple[str, ...] = ()


@register("file")
class FileModel(Model):
    """A file access: always enabled (the detector is what looks at it)."""


def _root_of(path: Any) -> Optional[Tuple[str, str]]:
    """``(absolute path, label)`` when ``path`` lies under a watched root."""
    if isinstance(path, int):
        return None
    try:
        full = os.path.abspath(os.fsdecode(path))
    except TypeError:
        return None
    for root in _roots:
        if full == root or full.startswith(root + os.sep):
            rel = os.path.relpath(full, os.path.dirname(root)) if full == root else os.path.relpath(full, root)
            return full, rel
    return None


def _step(name: str, path: Any, mode: str) -> None:
    agent = current()
    if agent is None or agent.busy:
        return
    found = _root_of(path)
    if found is None:
        return
    agent.step("file", name, obj=found[0], label=found[1], args=(mode, caller_stack(2)), depth=3)


def _mode_step(mode: str) -> str:
    if "w" in mode:
        return "truncate"
    if any(c in mode for c in "ax+"):
        return "write"
    return "read"


def watched_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
    if _roots:
        _step(_mode_step(str(mode)), file, str(mode))
    return _real_open(file, mode, *args, **kwargs)


def watched_replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
    if _roots:
        _step("replace", dst, "replace")
    return _real_replace(src, dst, *args, **kwargs)


def roots_for(watch: Watch, state: Any) -> List[str]:
    if watch is None:
        return []
    paths = watch(state) if callable(watch) else watch
    if isinstance(paths, (str, bytes, os.PathLike)):
        paths = [paths]
    return [os.path.abspath(os.fsdecode(p)) for p in paths]


def start(watch: Watch, state: Any) -> bool:
    """Install the patches for the roots ``watch`` names (after setup)."""
    roots = roots_for(watch, state)
    if not roots:
        return False
    install(roots)
    return True


def install(roots: Sequence[str]) -> None:
    global _roots
    _roots = tuple(roots)
    builtins.open = watched_open
    io.open = watched_open
    os.replace = watched_replace


class WatchedTarget:
    """A process task's target that watches ``roots`` while it runs (the task
    process has its own ``open``).  ``func`` is the user's function, for the
    reports that show where a task starts."""

    def __init__(self, target: Callable, roots: Sequence[str]) -> None:
        self.target = target
        self.roots = tuple(roots)
        self.func = getattr(target, "func", target)

    def __call__(self, state: Any) -> Any:
        install(self.roots)
        try:
            return self.target(state)
        finally:
            stop()


def wrap(target: Callable, watch: Watch, state: Any) -> Callable:
    """``target``, watching ``watch``'s roots inside its task process."""
    roots = roots_for(watch, state)
    return WatchedTarget(target, roots) if roots else target


def stop() -> None:
    """Remove the patches (idempotent)."""
    global _roots
    _roots = ()
    if builtins.open is watched_open:
        builtins.open = _real_open
    if io.open is watched_open:
        io.open = _real_io_open
    if os.replace is watched_replace:
        os.replace = _real_replace
