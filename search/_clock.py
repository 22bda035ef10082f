"""The driver's sense of time, injectable so its policies can be tested on a simulated
clock (`paretotune.testing.SimulatedClock`) in milliseconds; and `Throttle`, which keeps a
costly step to a share of the real time."""

from __future__ import annotations

import math
import time
from typing import Protocol

COST_SHARE = 0.05  # the share of its process's time a throttled step may take


class Clock(Protocol):
    """Seconds on a monotonic scale; only differences mean anything."""

    def now(self) -> float: ...


class SystemClock:
    """The machine's monotonic clock (``time.perf_counter``)."""

    def now(self) -> float:
        return time.perf_counter()


class Throttle:
    """Lets a costly step run only once ``1 / share`` times its last cost has passed since
    it ended (real time: the cost is the process's own), so it takes at most ``share`` of
    the time however large its input grows; never sooner than ``floor_s`` apart."""

    def __init__(self, share: float = COST_SHARE, floor_s: float = 0.0):
        self.share, self.floor_s = share, floor_s
        self._next_at = -math.inf

    def due(self) -> bool:
        return time.perf_counter() >= self._next_at

    def spent(self, started: float) -> None:
        """The step ran from ``started`` (a `time.perf_counter` reading) until now."""
        now = time.perf_counter()
        self._next_at = now + max(self.floor_s, (now - started) / self.share)
