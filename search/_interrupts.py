"""Writes that belong together are never cut in two by Ctrl-C or ``kill``."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

_DEFERRED = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """SIGINT and SIGTERM arriving inside the block take effect as it ends, through the
    handlers that were in place: a trial's end is written, told and its compression
    variants added as a whole, or not begun (a variant lost between its trial's tell and
    its own write would never be made again). Off the main thread, where Python runs no
    handler, it defers nothing. A block that is cut by a non-signal error restores the
    handlers and re-delivers a held signal all the same."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        held.append(signum)

    previous = {number: signal.signal(number, hold) for number in _DEFERRED}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        if held:
            signal.raise_signal(held[0])  # as if it came now: the first one, once
