"""Ctrl-C in a long loop: the first one lets the iteration in flight finish and be written
(the loop checks the flag and stops), so nothing of it is lost; a second one interrupts at
once. A killed run (SIGKILL, power) still resumes from its last checkpoint.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator


@contextlib.contextmanager
def defer_sigint() -> Iterator[list[bool]]:
    """First Ctrl-C sets a flag (the loop finishes and writes the current iteration, then
    stops); a second one interrupts immediately. No-op outside the main thread."""
    flag = [False]

    def handler(signum, frame):
        if flag[0]:
            raise KeyboardInterrupt
        flag[0] = True

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread
        yield flag
        return
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)
