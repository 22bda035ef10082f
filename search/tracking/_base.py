"""Trackers record a study outside Optuna: MLflow, or nothing.

Invariants of every tracker:

- All methods are called from the driver thread only, in this order: ``open_study``
  once, then any number of ``start_trial`` / ``finish_trial`` / ``chart_front`` /
  ``update_front`` / ``repair`` / ``poll``, then ``close`` once.
- Every call but ``close`` returns at once; the work may happen later (in another
  process), but in call order. Trials are named by their Optuna
  number, never by a run id, so the driver never waits for the tracker to go on.
- What the tracker learns (the parent run id, each trial's run id) comes back through
  ``poll``; the driver stores it in the Optuna storage. A tracker never writes there.
- ``close`` waits until everything asked before it is recorded.
- Tracking trouble never raises: it comes back as lines in ``TrackerNews.errors`` (from
  ``poll`` or ``close``), the one channel for it. The study goes on.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from paretotune.execution._worker import TrialReport


@dataclass(frozen=True)
class StudyRef:
    """The study a tracker records: its name and spec, the parent record an earlier driver
    stored (``parent_run_id``), the study's random ``uid`` (to find a parent record
    whose id a killed driver never stored), and its ``objectives`` (metric -> direction,
    in order; empty: the spec's, else those of the first front published)."""

    name: str
    spec: dict[str, Any]
    parent_run_id: str | None = None
    uid: str | None = None
    objectives: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class FrontRow:
    """One COMPLETE trial of a `FrontSnapshot`: its run (None: not known yet), params,
    objective values by name, and Pareto rank (0: on the front)."""

    number: int
    run_id: str | None
    params: dict[str, Any]
    values: dict[str, float]
    rank: int

    def as_dict(self) -> dict[str, Any]:
        """The row as the front's JSON artifact (``pareto_front.json``) lists it: its
        fields in order."""
        return asdict(self)


@dataclass(frozen=True)
class FrontSnapshot:
    """The state of the front after some trials: what trackers publish on the parent run."""

    objectives: dict[str, str]  # metric name -> direction
    rows: list[FrontRow]  # one per COMPLETE trial (the running front's: see `_front.Front`)
    hypervolume: float | None  # None while the study is too young to chart it
    step: int  # number of finished trials when the snapshot was taken
    final: bool = False
    study_metrics: dict[str, float] = field(default_factory=dict)  # compute, feasible count
    # the box the hypervolume is a share of, once fixed: metric -> [ideal, reference]
    box: dict[str, list[float]] | None = None
    # the trials whose Pareto tags this snapshot sets (None: every row's); the rest were
    # tagged as they were told, or by an earlier run
    retag: frozenset[int] | None = None


@dataclass(frozen=True)
class FinishedTrial:
    """A trial Optuna holds as finished, as far as it can be recorded again from there:
    its state, params, final metrics and per-epoch curves (its artifacts and model lived
    only in the driver that ran it, or in the tracker's unlogged store)."""

    number: int
    state: str  # COMPLETE, PRUNED or FAIL
    params: dict[str, Any]
    metrics: dict[str, float]
    error: str | None = None
    history: list[dict[str, float]] = field(default_factory=list)  # one entry per epoch
    stopped_at: int | None = None
    placement: dict[str, str] = field(default_factory=dict)
    started_at: float = 0.0  # Unix time its worker began it (0: unknown)
    worker_time_s: float = 0.0  # its time on the worker


@dataclass
class TrackerNews:
    """What a tracker learned since the last ``poll``."""

    experiment_id: str | None = None
    parent_run_id: str | None = None
    run_ids: dict[int, str | None] = field(default_factory=dict)  # None: no run was made
    errors: list[str] = field(default_factory=list)

    def merge(self, other: TrackerNews) -> None:
        self.experiment_id = other.experiment_id or self.experiment_id
        self.parent_run_id = other.parent_run_id or self.parent_run_id
        self.run_ids |= other.run_ids
        self.errors += other.errors


class Tracker(abc.ABC):
    """Records studies and trials. See the module docstring for the invariants."""

    @property
    def keeps_runs(self) -> bool:
        """Whether ``poll`` will report a run id for every started trial (now). The driver
        then tells Optuna a trial's result only once its run id is stored with it."""
        return False

    @property
    def backlog(self) -> int:
        """Trials started but not yet recorded as finished (0 for a synchronous tracker)."""
        return 0

    @abc.abstractmethod
    def open_study(self, study: StudyRef) -> None:
        """Open (or re-open, on resume) the study's parent record: the one with id
        ``study.parent_run_id``, else the one tagged with ``study.uid`` (a driver killed
        before it stored the parent's id), else a new one."""

    @abc.abstractmethod
    def start_trial(
        self, number: int, params: dict[str, Any], labels: Mapping[str, str] | None = None
    ) -> None:
        """Open the trial's record; its run id comes back through ``poll``. ``labels``: what
        to tag it with besides (a retry's ``attempt`` and ``retry_of``)."""

    @abc.abstractmethod
    def finish_trial(self, number: int, state: str, report: TrialReport) -> None:
        """Record the trial's metrics, curves, artifacts and final state."""

    @abc.abstractmethod
    def mark_interrupted(self, numbers: Sequence[int]) -> None:
        """Close the records of trials a crashed or interrupted driver left running."""

    @abc.abstractmethod
    def update_front(self, snapshot: FrontSnapshot) -> None:
        """Publish the current Pareto front (tags on trials, artifacts on the parent)."""

    def chart_front(self, step: int, metrics: Mapping[str, float]) -> None:
        """Chart the front's ``metrics`` (``hypervolume``, ``pareto_size``) on the study's
        record at ``step``, the number of finished trials (as `FrontSnapshot.step` counts
        them): called after each finished trial. A step charted before (by this call or
        by ``update_front``) is not charted again."""
        return None

    def repair(self, finished: Sequence[FinishedTrial]) -> None:
        """Make the records agree with Optuna's ``finished`` trials (every finished trial
        of the study): record again those missing, open or disagreeing (a driver killed
        outright loses the jobs it had not handed over; an outage, what it could not
        send), and close the records of trials that are not finished."""
        return None

    def log_metrics(self, number: int, metrics: dict[str, float]) -> None:
        """Add ``metrics`` to a finished trial's record (the front's latencies measured
        again at the end of a run)."""
        return None

    def poll(self, timeout: float = 0.0) -> TrackerNews:
        """What was learned since the last call; waits up to ``timeout`` s for news."""
        return TrackerNews()

    def close(self, status: str = "FINISHED") -> TrackerNews:
        """Flush everything, close the parent record with ``status``; the last news."""
        return TrackerNews()

    @property
    def location(self) -> str | None:
        """Where the records can be seen (for the user), or None."""
        return None


class NullTracker(Tracker):
    """Records nothing: for benchmarks of the bare orchestration and for quick experiments."""

    def open_study(self, study: StudyRef) -> None:
        return None

    def start_trial(
        self, number: int, params: dict[str, Any], labels: Mapping[str, str] | None = None
    ) -> None:
        return None

    def finish_trial(self, number: int, state: str, report: TrialReport) -> None:
        return None

    def mark_interrupted(self, numbers: Sequence[int]) -> None:
        return None

    def update_front(self, snapshot: FrontSnapshot) -> None:
        return None
