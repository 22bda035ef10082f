"""The driver's view of the front, kept incrementally: its members (with their params and
run ids), its hypervolume, the models of this run's non-dominated trials, the snapshots
handed to the tracker, and the end-of-run re-measurement of the front's latencies.

Nothing here re-reads or re-ranks the study while it runs: a finished trial costs one
numpy pass over the front (`RunningFront.add`); the hypervolume and the snapshots cost
what the front's size needs, and are throttled by their own measured cost once the front
is large (`Throttle`). Only the final snapshot ranks every complete trial, once.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from paretotune._clock import Throttle
from paretotune.execution import Executor
from paretotune.results.pareto import HypervolumeBox, RunningFront, dominates, nondominated_ranks
from paretotune.results.records import HV_BOUND_TRIALS, FrontSummary
from paretotune.results.study_view import StudyView
from paretotune.study._writer import StudyWriter
from paretotune.tracking import FrontRow, FrontSnapshot, Tracker

# A front of up to this many points has its hypervolume computed after every change (a
# fraction of a millisecond with moocore); a larger one at most `COST_SHARE` of the time.
HV_EVERY_CHANGE_POINTS = 200


@dataclass
class _Member:
    params: dict[str, Any]
    values: list[float]


@dataclass
class Front:
    """What the driver keeps of a study's front between trials."""

    objectives: dict[str, str]
    published_at: float = -math.inf
    changed: bool = False  # a trial joined the front since the last snapshot
    # models of this run's non-dominated trials: number -> (values, pickled model)
    models: dict[int, tuple[list[float], bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.directions = list(self.objectives.values())
        self.running = RunningFront(self.directions)
        self._members: dict[int, _Member] = {}  # the running front's trials
        self._left: dict[int, list[float]] = {}  # left the front since the last snapshot
        self._departed: set[int] = set()  # left the front during this run
        self._complete: list[list[float]] = []  # every complete trial's values (for ranks)
        self._first: list[list[float]] = []  # the first complete trials': they fix the box
        self.box: HypervolumeBox | None = None
        self._hypervolume: float | None = None  # cached until the front changes
        self._hv_stale = False
        self._hv_throttle = Throttle()
        self.publish_throttle = Throttle()

    def __len__(self) -> int:
        return len(self.running)

    def load(self, view: StudyView) -> None:
        """Count the complete trials earlier runs finished, in the order they completed
        (as `rank_trials` fixes the box)."""
        from paretotune.results.records import completion_order
        from paretotune.study._attrs import PARAMS_ATTR

        complete = [t for t in view.trials if t.state.name == "COMPLETE" and t.values]
        for trial in sorted(complete, key=completion_order):
            params = trial.user_attrs.get(PARAMS_ATTR) or trial.params
            self.add(trial.number, list(trial.values), dict(params))
        self._left.clear()  # (what left the front before this run was tagged then)
        self._departed.clear()

    def add(
        self,
        number: int,
        values: list[float],
        params: Mapping[str, Any],
        model: bytes | None = None,
    ) -> bool:
        """A complete trial: count it toward the front, mark the front changed when it
        joins it, and keep its model while no other trial of this run dominates it. True
        when it joined the front."""
        self._complete.append(list(values))
        if len(self._first) < HV_BOUND_TRIALS:
            self._first.append(list(values))
            if len(self._first) == HV_BOUND_TRIALS:
                self.box = HypervolumeBox.from_values(self._first, self.directions)
        if not self.running.add(values, number):
            return False
        self.changed, self._hv_stale = True, True
        for gone in self.running.dropped:  # the members the new point dominates
            self._left[gone] = self._members.pop(gone).values
            self._departed.add(gone)
        self._members[number] = _Member(dict(params), list(values))
        if model is not None:
            self._keep_model(number, values, model)
        return True

    # -- the hypervolume ---------------------------------------------------------------
    def hypervolume(self, *, fresh: bool = False) -> float | None:
        """The front's hypervolume, the share of `box` it dominates (None until the box
        is fixed by the first ``HV_BOUND_TRIALS`` complete trials). Recomputed after a
        change while the front is small, else when the `Throttle` lets it (or ``fresh``)."""
        if self.box is None:
            return None
        small = len(self.running) <= HV_EVERY_CHANGE_POINTS
        if self._hypervolume is None or (
            self._hv_stale and (fresh or small or self._hv_throttle.due())
        ):
            started = time.perf_counter()
            self._hypervolume = self.box.share(self.running.values())
            self._hv_stale = False
            self._hv_throttle.spent(started)
        return self._hypervolume

    # -- models ------------------------------------------------------------------------
    def _keep_model(self, number: int, values: list[float], model: bytes) -> None:
        if any(dominates(v, values, self.directions) for v, _ in self.models.values()):
            return  # dominated by a model of this run (the running front may hold older ones)
        for other in [
            n for n, (v, _) in self.models.items() if dominates(values, v, self.directions)
        ]:
            del self.models[other]
        self.models[number] = (values, model)

    # -- snapshots ---------------------------------------------------------------------
    def snapshot(
        self,
        *,
        step: int,
        study_metrics: dict[str, float],
        now: float,
        run_ids: Callable[[int], str | None],
    ) -> FrontSnapshot:
        """The front while the study runs: its members (rank 0) and the trials that left
        it since the last snapshot (with their rank now), not every complete trial (the
        final snapshot has those, `final_snapshot`)."""
        started = time.perf_counter()
        self.published_at, self.changed = now, False
        rows = [
            self._row(number, run_ids(number), member.params, member.values, 0)
            for number, member in self._members.items()
        ]
        if self._left:
            ranks = self._ranks_of(list(self._left.values()))
            rows += [
                self._row(number, run_ids(number), {}, values, rank)
                for (number, values), rank in zip(self._left.items(), ranks, strict=True)
            ]
            self._left.clear()
        hypervolume = self.hypervolume(fresh=True)
        snapshot = FrontSnapshot(
            self.objectives, rows, hypervolume, step, False, study_metrics, self._box_dict()
        )
        self.publish_throttle.spent(started)
        return snapshot

    def _row(
        self,
        number: int,
        run_id: str | None,
        params: dict[str, Any],
        values: list[float],
        rank: int,
    ) -> FrontRow:
        return FrontRow(
            number, run_id, params, dict(zip(self.objectives, values, strict=True)), rank
        )

    def _ranks_of(self, values: list[list[float]]) -> list[int]:
        """The non-dominated ranks of ``values`` among every complete trial (one moocore
        sort of the study's values: milliseconds at 10,000 trials)."""
        every = np.array(self._complete + values, dtype=float)
        ranks = nondominated_ranks(every, self.directions)
        return [int(r) for r in ranks[len(self._complete) :]]

    def final_snapshot(
        self, view: StudyView, *, step: int, study_metrics: dict[str, float], now: float
    ) -> tuple[FrontSummary, FrontSnapshot]:
        """Every complete trial ranked (one read of the study, at the end), and the
        snapshot a tracker publishes from it."""
        self.published_at, self.changed = now, False
        self._left.clear()
        front = view.front()
        rows = [
            FrontRow(r.number, r.mlflow_run_id, dict(r.params), dict(r.values), r.pareto_rank)
            for r in front.records
            if r.pareto_rank is not None  # (every record of a front is ranked)
        ]
        hypervolume, box = front.hypervolume, None
        if len(front.records) >= HV_BOUND_TRIALS and front.box is not None:
            box = front.box.as_dict(list(self.objectives))  # fixed: stated in MLflow
        # tags: the front, and the trials that left it in this run (the others were tagged
        # off the front as they were told, or by an earlier run)
        retag = frozenset(self._members) | frozenset(self._departed)
        snapshot = FrontSnapshot(
            self.objectives, rows, hypervolume, step, True, study_metrics, box, retag
        )
        return front, snapshot

    def _box_dict(self) -> dict[str, list[float]] | None:
        return self.box.as_dict(list(self.objectives)) if self.box is not None else None

    # -- the end of a run --------------------------------------------------------------
    def remeasure(self, executor: Executor, writer: StudyWriter, tracker: Tracker) -> None:
        """Measure the front's latencies again now that no trial runs (the figures the
        trials took were taken beside other trials), and record both: the study attribute
        ``isolated_measurements`` and the runs' ``latency_ms_isolated`` metrics. Only the
        models this run trained are at hand."""
        if not self.models:
            return
        on_front = set(self._members)
        measured = executor.remeasure(
            {n: model for n, (_, model) in self.models.items() if n in on_front}
        )
        if not measured:
            return
        writer.isolated(measured)
        for number, metrics in measured.items():
            tracker.log_metrics(number, metrics)
