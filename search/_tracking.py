"""Trackers record a study outside Optuna: MLflow, or nothing.

Invariants of every tracker:

- All methods are called from the driver thread only, in this order: ``open_study``
  once, then any number of ``start_trial`` / ``finish_trial`` / ``update_front``, then
  ``close`` once.
- ``start_trial`` returns a future run id (``None`` when the tracker keeps no runs); the
  other calls return at once and their work may happen later, but in call order.
- ``close`` waits until everything asked before it is recorded.
- A tracker never writes to the Optuna storage; the driver stores what it returns.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from search._worker import TrialReport


@dataclass(frozen=True)
class FrontSnapshot:
    """The state of the front after some trials: what trackers publish on the parent run."""

    objectives: dict[str, str]  # metric name -> direction
    rows: list[dict[str, Any]]  # one per COMPLETE trial: number, run_id, params, values, rank
    hypervolume: float | None  # None while the study is too young to chart it
    step: int  # number of finished trials when the snapshot was taken
    final: bool = False


class Tracker(abc.ABC):
    """Records studies and trials. See the module docstring for the invariants."""

    @abc.abstractmethod
    def open_study(self, name: str, spec: dict[str, Any], parent_run_id: str | None) -> str | None:
        """Open (or re-open, on resume) the study's parent record; return its id."""

    @abc.abstractmethod
    def start_trial(self, number: int, params: dict[str, Any]) -> Future[str | None]:
        """Open the trial's record; the future resolves to its run id."""

    @abc.abstractmethod
    def finish_trial(self, run_id: str | None, state: str, report: TrialReport) -> None:
        """Record the trial's metrics, curves, artifacts and final state."""

    @abc.abstractmethod
    def mark_interrupted(self, numbers: Sequence[int]) -> None:
        """Close the records of trials a crashed or interrupted driver left running."""

    @abc.abstractmethod
    def update_front(self, snapshot: FrontSnapshot) -> None:
        """Publish the current Pareto front (tags on trials, artifacts on the parent)."""

    def close(self, status: str = "FINISHED") -> None:
        """Flush everything and close the parent record with ``status``."""
        return None

    @property
    def location(self) -> str | None:
        """Where the records can be seen (for the user), or None."""
        return None


class NullTracker(Tracker):
    """Records nothing: for benchmarks of the bare orchestration and for quick experiments."""

    def open_study(self, name: str, spec: dict[str, Any], parent_run_id: str | None) -> None:
        return None

    def start_trial(self, number: int, params: dict[str, Any]) -> Future[str | None]:
        future: Future[str | None] = Future()
        future.set_result(None)
        return future

    def finish_trial(self, run_id: str | None, state: str, report: TrialReport) -> None:
        return None

    def mark_interrupted(self, numbers: Sequence[int]) -> None:
        return None

    def update_front(self, snapshot: FrontSnapshot) -> None:
        return None
