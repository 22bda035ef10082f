"""The measuring slot: while a trial times its model, no other trial on the machine trains.

Two trials on two cores share the cache and the memory bus: a model timed beside a trial
that trains runs 1.6x slower and its latency's CV is 0.27 (``benchmarks/measurement_
trust.py``), so a front ranked by such figures ranks noise. With the slot, training takes
it shared, one batch (or one validation pass) at a time, and timing takes it exclusive:
a trial about to time its model waits for the batches in progress to end, the others wait
at their next batch until the timing is done. Costs measured this way are the model's
alone; the trainers lose the time the timing takes, and their compute clock does not run
while they wait.

It is a pair of ``flock`` files under the machine's temp dir, so every paretotune trial on
one machine (every worker process, every study of this user) takes part, and none on
another. The ``gate`` file gives timing priority: a timer holds it while it waits, and a
trainer passes through it before each batch, so trainers cannot starve a timer.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def machine_slot_path() -> str:
    """The slot every trial of this user on this machine shares."""
    return str(Path(tempfile.gettempdir()) / f"paretotune-{os.getuid()}-measuring")


class MeasuringSlot:
    """Shared for training, exclusive for timing; a no-op without a ``path``."""

    def __init__(self, path: str | None):
        self.path = path
        self._files: tuple[int, int] | None = None

    @property
    def active(self) -> bool:
        return self.path is not None

    def _fds(self) -> tuple[int, int] | None:
        if self.path is None:
            return None
        if self._files is None:
            flags = os.O_RDWR | os.O_CREAT
            self._files = (os.open(f"{self.path}.gate", flags), os.open(f"{self.path}.lock", flags))
        return self._files

    @contextlib.contextmanager
    def training(self) -> Iterator[None]:
        """A batch of training: waits while a trial is timing its model."""
        fds = self._fds()
        if fds is None:
            yield
            return
        gate, lock = fds
        fcntl.flock(gate, fcntl.LOCK_EX)  # through the turnstile: blocks while a timer waits
        fcntl.flock(gate, fcntl.LOCK_UN)
        fcntl.flock(lock, fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def timing(self) -> Iterator[None]:
        """Timing a model: no trial on this machine trains meanwhile."""
        fds = self._fds()
        if fds is None:
            yield
            return
        gate, lock = fds
        fcntl.flock(gate, fcntl.LOCK_EX)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        finally:
            fcntl.flock(gate, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._files is not None:
            for fd in self._files:
                os.close(fd)
            self._files = None


NO_SLOT = MeasuringSlot(None)
_machine_slot: MeasuringSlot | None = None


def machine_slot() -> MeasuringSlot:
    """This process's handle on the machine's slot (its two files opened once)."""
    global _machine_slot
    if _machine_slot is None:
        _machine_slot = MeasuringSlot(machine_slot_path())
    return _machine_slot
