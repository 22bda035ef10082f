"""Executors place trials on workers. The driver submits tasks and collects reports.

Invariants of every executor:

- ``capacity`` tasks may be in flight at once; ``submit`` is only called below it. It
  may grow while the study runs (workers a cluster places late); ``placing`` counts
  the workers still to come, and ``wait`` waits for them when nothing is in flight.
- ``wait`` returns the reports of finished tasks (possibly none before ``timeout``);
  each submitted task is reported exactly once, a trial that raised as a report with
  ``error`` set. A worker that dies is reported as an error report for its task.
- Workers never touch the Optuna storage or MLflow.
- ``use_epoch_gate`` applies to the trials submitted after it; a trial its gate stops is
  reported with ``stopped_at`` set. ``remote_workers`` says whether workers run in other
  processes (what the gate's decider must then reach them through, see
  `paretotune.stopping`).
"""

from __future__ import annotations

import abc

from paretotune.execution._worker import EpochGate, TrialReport, TrialTask


class Executor(abc.ABC):
    """Runs trials somewhere. See the module docstring for the invariants."""

    remote_workers: bool = False

    @property
    @abc.abstractmethod
    def capacity(self) -> int:
        """The workers ready for a trial (may grow as a cluster places more)."""

    @property
    def placing(self) -> int:
        """The workers asked for and not yet placed (they count once they are): none
        unless the executor places workers late."""
        return 0

    @abc.abstractmethod
    def use_epoch_gate(self, gate: EpochGate | None) -> None:
        """Call ``gate`` after every epoch of the built-in trials submitted from now on."""

    @abc.abstractmethod
    def submit(self, task: TrialTask) -> None:
        """Start ``task`` on a free worker. Raises RuntimeError when none is free."""

    @abc.abstractmethod
    def wait(self, timeout: float) -> list[TrialReport]:
        """Reports of finished tasks, waiting at most ``timeout`` seconds for the first."""

    def remeasure(self, models: dict[int, bytes]) -> dict[int, dict[str, float]]:
        """Measure again, on one idle worker, the latency of the given trained models (trial
        number -> pickled model), when no trial is running. Empty where the executor cannot
        (a scripted or custom-objective executor)."""
        return {}

    def shutdown(self) -> None:
        """Release the workers (nothing to release by default)."""
        return None
