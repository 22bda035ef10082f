"""The driver's sense of time, injectable so its policies can be tested on a simulated
clock (`paretotune.testing.SimulatedClock`) in milliseconds."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Seconds on a monotonic scale; only differences mean anything."""

    def now(self) -> float: ...


class SystemClock:
    """The machine's monotonic clock (``time.perf_counter``)."""

    def now(self) -> float:
        return time.perf_counter()
