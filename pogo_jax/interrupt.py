"""SIGTERM stops a command the way Ctrl-C does.

``timeout``, systemd, a CI runner and ``kill`` send SIGTERM; Python's default for it ends the process at
once, skipping every ``finally``: child processes stay up, ports stay bound, a checkpoint or a download is
not closed. Turned into ``KeyboardInterrupt`` it takes Ctrl-C's path instead: children are stopped, what
was written is kept, and the CLI exits 130 with one line.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator


def _raise_interrupt(signum, frame) -> None:  # noqa: ANN001
    raise KeyboardInterrupt


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block SIGTERM raises ``KeyboardInterrupt``; the previous handler comes back after it.
    Outside the main thread signals cannot be handled, and are left alone."""
    try:
        old = signal.signal(signal.SIGTERM, _raise_interrupt)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)
