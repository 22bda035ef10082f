"""The driver's view of the front: its running size, the models of this run's
non-dominated trials, the snapshots handed to the tracker, and the end-of-run
re-measurement of the front's latencies."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import optuna
from paretotune.execution import Executor
from paretotune.results.pareto import RunningFront, dominates
from paretotune.results.records import (
    HV_BOUND_TRIALS,
    FrontSummary,
    finished_count,
    normalized_hypervolume,
    rank_trials,
)
from paretotune.study._attrs import ISOLATED_ATTR
from paretotune.tracking import FrontSnapshot, Tracker


@dataclass
class Front:
    """What the driver keeps of a study's front between trials."""

    objectives: dict[str, str]
    published_at: float = -math.inf
    changed: bool = False  # a trial joined the front since the last snapshot
    # models of this run's non-dominated trials: number -> (values, pickled model)
    models: dict[int, tuple[list[float], bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.running = RunningFront(list(self.objectives.values()))
        self._hypervolume: float | None = None  # cached until the front changes
        # the first complete trials' values: they fix the hypervolume's normalisation,
        # as in `rank_trials`
        self._bounds: list[list[float]] = []

    def __len__(self) -> int:
        return len(self.running)

    def add(self, number: int, values: list[float], model: bytes | None = None) -> None:
        """A complete trial: count it toward the front's size, mark the front changed when
        it joins it, and keep its model while no other trial of this run dominates it."""
        joined = self.running.add(values)
        self.changed = self.changed or joined
        if len(self._bounds) < HV_BOUND_TRIALS:
            self._bounds.append(list(values))
            self._hypervolume = None
        elif joined:
            self._hypervolume = None
        if model is not None and joined:
            self._keep_model(number, values, model)

    def hypervolume(self) -> float | None:
        """The front's hypervolume as `rank_trials` measures it, once its normalisation
        is fixed (None before: it still moves then). Cheap: the front's points only."""
        if len(self._bounds) < HV_BOUND_TRIALS:
            return None
        if self._hypervolume is None:
            self._hypervolume = normalized_hypervolume(
                np.array(self.running.values()),
                list(self.objectives.values()),
                np.array(self._bounds),
            )
        return self._hypervolume

    def _keep_model(self, number: int, values: list[float], model: bytes) -> None:
        directions = list(self.objectives.values())
        if any(dominates(v, values, directions) for v, _ in self.models.values()):
            return  # dominated by a model of this run (the running front may hold older ones)
        for other in [n for n, (v, _) in self.models.items() if dominates(values, v, directions)]:
            del self.models[other]
        self.models[number] = (values, model)

    def snapshot(
        self, study: optuna.Study, *, final: bool, study_metrics: dict[str, float], now: float
    ) -> tuple[FrontSummary, FrontSnapshot]:
        """Every complete trial ranked, and the snapshot a tracker publishes."""
        self.published_at, self.changed = now, False
        trials = study.get_trials(deepcopy=False)
        front = rank_trials(trials, self.objectives)
        rows = [
            {
                "number": r.number,
                "run_id": r.mlflow_run_id,
                "params": dict(r.params),
                "values": dict(r.values),
                "rank": r.pareto_rank,
            }
            for r in front.records
        ]
        step = finished_count(trials)
        # Before the normalisation is fixed the hypervolume still moves: don't chart it.
        settled = final or len(front.records) >= HV_BOUND_TRIALS
        hv = front.hypervolume if settled else None
        return front, FrontSnapshot(self.objectives, rows, hv, step, final, study_metrics)

    def remeasure(self, study: optuna.Study, executor: Executor, tracker: Tracker) -> None:
        """Measure the front's latencies again now that no trial runs (the figures the
        trials took were taken beside other trials), and record both: the study attribute
        ``isolated_measurements`` and the runs' ``latency_ms_isolated`` metrics. Only the
        models this run trained are at hand."""
        if not self.models:
            return
        pareto = rank_trials(study.get_trials(deepcopy=False), self.objectives).pareto
        on_front = {r.number for r in pareto}
        measured = executor.remeasure(
            {n: model for n, (_, model) in self.models.items() if n in on_front}
        )
        if not measured:
            return
        kept = dict(study.user_attrs.get(ISOLATED_ATTR) or {})
        kept |= {str(n): m for n, m in measured.items()}
        study.set_user_attr(ISOLATED_ATTR, kept)
        for number, metrics in measured.items():
            tracker.log_metrics(number, metrics)
