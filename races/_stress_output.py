"""What a :func:`races.stress` run printed: its tasks' stdout and stderr, kept.

A real run prints for real: a buggy task's traceback, a child process's
``Process Process-3: Traceback ...`` from ``multiprocessing``'s bootstrap, the
greetings of the notes' programs.  Left on the terminal, a campaign of runs
buries its own report; kept, the first failing run's output goes into
``StressResult.first_failure.captured``.

The capture works on file descriptors 1 and 2, so what the tasks start (a
``multiprocessing.Process``, a subprocess) inherits it too: for the thread
backend, the stress process's own descriptors point at a file for the
length of one run (:func:`captured_fds`); a task process points its own at
a file of its own when it starts (:func:`send_fds_to`).
"""
from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

MAX_KEPT = 64 * 1024  # characters of a run's output kept (its end: where the failure is)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # a closed or broken stream: nothing to flush
            pass


def send_fds_to(path: str) -> None:
    """Point descriptors 1 and 2 of this process at ``path``, emptied first, and
    ``sys.stdout``/``sys.stderr`` at them (a task process, at its start:
    everything it and its children print goes there)."""
    _flush()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
    finally:
        os.close(fd)
    sys.stdout, sys.stderr = _stream(1), _stream(2)


def _stream(fd: int) -> TextIO:
    """A line-buffered text stream on descriptor ``fd`` (left open when closed):
    a ``sys.stdout`` replaced by a test runner's capture would bypass the fd."""
    return open(fd, "w", buffering=1, encoding="utf-8", errors="backslashreplace", closefd=False)  # noqa: SIM115


@contextmanager
def captured_fds(path: str) -> Iterator[None]:
    """Descriptors 1 and 2, and ``sys.stdout``/``sys.stderr``, point at
    ``path`` inside the block, then back."""
    _flush()
    saved = [os.dup(1), os.dup(2)]
    streams = sys.stdout, sys.stderr
    try:
        send_fds_to(path)
        yield
    finally:
        _flush()
        # ours are not closed: a thread left running after a timeout may print
        # through them later (to the restored descriptors)
        sys.stdout, sys.stderr = streams
        for fd, target in zip(saved, (1, 2)):
            os.dup2(fd, target)
            os.close(fd)


def read_output(paths: list[tuple[str, str]]) -> str:
    """The text of the output files, ``(label, path)`` each; a label heads its
    part when there are several.  Only the last :data:`MAX_KEPT` characters of
    each are kept."""
    parts = []
    for label, path in paths:
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                text = fh.read()
        except OSError:
            continue
        if not text:
            continue
        if len(text) > MAX_KEPT:
            text = f"[... {len(text) - MAX_KEPT} characters cut ...]\n" + text[-MAX_KEPT:]
        parts.append(f"--- {label} ---\n{text}" if label else text)
    return "".join(part if part.endswith("\n") else part + "\n" for part in parts)
