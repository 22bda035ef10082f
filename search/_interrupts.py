"""Writes that belong together are never cut in two by Ctrl-C or ``kill``."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

_DEFERRED = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """SIGINT and SIGTERM arriving inside the block take effect as it ends, through the
    handlers that were in place: a trial's end is written, told and its compression
    variants added as a whole, or not begun (a variant lost between its trial's tell and
    its own write would never be made again). A second signal inside the block does not
    wait (a write stuck on a slow server must not make Ctrl-C look dead): it takes effect
    at once, SIGTERM first if both came. Off the main thread, where Python runs no
    handler, it defers nothing. A block cut by an error re-delivers a held signal too."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    previous: dict[int, Any] = {}

    def deliver() -> None:
        """The handlers back, and the held signal raised again, once."""
        for number, handler in previous.items():
            signal.signal(number, handler)
        previous.clear()
        if held:
            signal.raise_signal(signal.SIGTERM if signal.SIGTERM in held else held[0])

    def hold(signum: int, frame: FrameType | None) -> None:
        held.append(signum)
        if len(held) > 1:  # asked again: now
            deliver()

    previous.update({number: signal.signal(number, hold) for number in _DEFERRED})
    try:
        yield
    finally:
        if previous:  # (not yet delivered by a second signal)
            deliver()
