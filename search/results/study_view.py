"""One reading of a study: `StudyView` loads a study's trials and attributes once and
answers everything the commands, the `Client` and the driver ask of them (counts by
state, records, one cached ranking, the summary, the finished trials, the compute), so
nothing re-reads or re-ranks the whole study per question.

A view is a snapshot: it does not see trials told after it was made. Make a new one to
read again (a command makes one; the driver makes one when it opens the study and then
keeps its own counts incrementally).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cached_property
from types import MappingProxyType
from typing import Any

import optuna
from optuna.trial import FrozenTrial
from paretotune.results import selection as _selection
from paretotune.results.records import (
    Compute,
    FrontSummary,
    TrialRecord,
    TrialSet,
    compute_of,
    rank_trials,
    record_of,
)
from paretotune.study._attrs import (
    EXPERIMENT_ATTR,
    FAIL_REASON_ATTR,
    FORKED_FROM_ATTR,
    INTERRUPTED_TRIALS_ATTR,
    ISOLATED_ATTR,
    PARENT_RUN_ATTR,
    RETRIED_TRIALS_ATTR,
    SPEC_ATTR,
    STOP_REASON_ATTR,
    STOPPED_AT_ATTR,
    is_variant,
    late_run_ids,
    state_name,
    study_objectives,
    was_interrupted,
)
from paretotune.study._snapshot import StudySnapshot


@dataclass(frozen=True)
class StudySummary:
    """One line about a study: its objectives, trials by state, front size and quality
    (``hypervolume``: the share of ``hypervolume_box`` its front dominates, in [0, 1])."""

    name: str
    objectives: dict[str, str]
    trials_by_state: dict[str, int]
    pareto_size: int
    hypervolume: float
    created: datetime | None
    updated: datetime | None
    mlflow_experiment_id: str | None
    mlflow_parent_run_id: str | None
    stop_reason: str | None = None  # budget, timeout, goal, interrupted (None: never ended)
    n_feasible: int = 0  # complete trials meeting the spec's constraints
    compute: Compute = field(default_factory=Compute)
    n_retried: int = 0  # attempts lost with their worker and run again (FAIL, not counted)
    hypervolume_box: dict[str, list[float]] = field(default_factory=dict)  # ideal, reference


class StudyView:
    """A study read once. Every answer is computed at most once per view.

    ``study`` is None for a view read from a snapshot (`from_snapshot`)."""

    def __init__(self, study: optuna.Study):
        self.study: optuna.Study | None = study
        self.name = study.study_name
        self.trials: list[FrozenTrial] = study.get_trials(deepcopy=False)
        self.attrs: dict[str, Any] = dict(study.user_attrs)
        self.objectives: dict[str, str] = study_objectives(study)

    @classmethod
    def from_snapshot(cls, snapshot: StudySnapshot) -> StudyView:
        """The view of a study kept beside its journal (`paretotune.study._snapshot`)."""
        view = cls.__new__(cls)
        view.study = None
        view.name = snapshot.name
        view.trials = snapshot.trials
        view.attrs = snapshot.attrs
        view.objectives = snapshot.objectives
        return view

    # -- states ------------------------------------------------------------------------
    @cached_property
    def interrupted(self) -> set[int]:
        """The trials a driver closed as interrupted (FAIL, queued again, not counted)."""
        return {int(n) for n in self.attrs.get(INTERRUPTED_TRIALS_ATTR) or ()}

    @cached_property
    def retried(self) -> set[int]:
        """The attempts a lost worker failed and that were run again (not counted)."""
        return {int(n) for n in self.attrs.get(RETRIED_TRIALS_ATTR) or ()}

    def state_of(self, trial: FrozenTrial) -> str:
        """Optuna's state name, but ``INTERRUPTED`` for a trial a stop or a dead driver
        closed."""
        return state_name(trial, self.interrupted)

    @cached_property
    def counts(self) -> dict[str, int]:
        """Trials by state name (`state_of`)."""
        return dict(Counter(self.state_of(t) for t in self.trials))

    @cached_property
    def interrupted_numbers(self) -> list[int]:
        """The trials shown as INTERRUPTED, by number."""
        return sorted(t.number for t in self.trials if self.state_of(t) == "INTERRUPTED")

    @cached_property
    def finished(self) -> list[FrozenTrial]:
        """COMPLETE, PRUNED and FAIL trials, but not those failed by an interruption or
        retried: the trials that count toward the budget."""
        run_again = self.interrupted | self.retried
        return [
            t for t in self.trials if t.state.is_finished() and not was_interrupted(t, run_again)
        ]

    @cached_property
    def trainings(self) -> list[FrozenTrial]:
        """The `finished` trials but the compression variants (forks of a trained model,
        `FORKED_FROM_ATTR`): what the budget counts."""
        return [t for t in self.finished if not is_variant(t)]

    def trial(self, number: int) -> FrozenTrial | None:
        """The frozen trial numbered ``number`` (trial numbers are list positions in
        Optuna; checked, not assumed)."""
        if 0 <= number < len(self.trials) and self.trials[number].number == number:
            return self.trials[number]
        return next((t for t in self.trials if t.number == number), None)

    # -- records and ranking -----------------------------------------------------------
    @cached_property
    def ranking(self) -> FrontSummary:
        """Every complete trial ranked by non-domination, and the front's hypervolume."""
        return rank_trials(self.trials, self.objectives, self.name)

    @cached_property
    def records(self) -> list[TrialRecord]:
        """Every trial as users see it (state names as `state_of`; the latencies measured
        again in isolation among its metrics), ranked and marked feasible or not where
        complete."""
        marked = {r.number: r for r in self.candidates(feasible_only=False)}
        return [marked.get(r.number, r) for r in self._plain_records]

    @cached_property
    def _plain_records(self) -> list[TrialRecord]:
        ranked = {r.number: r for r in self.ranking.records}
        records = [
            ranked.get(t.number)
            or record_of(t, self.objectives, study=self.name, state=self.state_of(t))
            for t in self.trials
        ]
        return self._with_isolated(self._with_late_run_ids(records))

    def _with_late_run_ids(self, records: list[TrialRecord]) -> list[TrialRecord]:
        """Run ids MLflow answered after their trials were told (kept on the study)."""
        late = late_run_ids(self.attrs)
        if not late:
            return records
        return [
            r
            if r.mlflow_run_id or r.number not in late
            else replace(r, mlflow_run_id=late[r.number])
            for r in records
        ]

    def front(self) -> FrontSummary:
        """The ranking with the records' isolated latencies (and feasibility)."""
        return replace(self.ranking, records=[r for r in self.records if r.pareto_rank is not None])

    def candidates(self, feasible_only: bool) -> TrialSet:
        """The complete trials (only the feasible ones if asked), ranked among themselves:
        what `best`, `knee` and `weighted` choose from."""
        return self._candidates[feasible_only]

    @cached_property
    def _candidates(self) -> dict[bool, TrialSet]:
        constraints = _selection.parse_constraints(self.attrs.get(SPEC_ATTR))
        if not constraints:  # every trial feasible: the study's own ranking
            ranked = TrialSet(r for r in self._plain_records if r.pareto_rank is not None)
            return {True: ranked, False: ranked}
        return {
            only: _selection.candidates(
                self._plain_records, self.objectives, constraints, self.name, feasible_only=only
            )
            for only in (True, False)
        }

    def _with_isolated(self, records: list[TrialRecord]) -> list[TrialRecord]:
        isolated = self.attrs.get(ISOLATED_ATTR) or {}
        if not isolated:
            return records
        return [
            replace(r, metrics=MappingProxyType({**r.metrics, **isolated[str(r.number)]}))
            if str(r.number) in isolated
            else r
            for r in records
        ]

    # -- the study as a whole ----------------------------------------------------------
    @cached_property
    def compute(self) -> Compute:
        spec = self.attrs.get(SPEC_ATTR) or {}
        return compute_of(self.trials, int(spec.get("budget", {}).get("epochs", 0)))

    def detail(self, number: int) -> dict[str, Any]:
        """What Optuna's state leaves out of one trial: the reason it failed, the epoch
        it was stopped after, the trial a compression variant was forked from (None where
        it has none)."""
        trial = self.trial(number)
        attrs = trial.user_attrs if trial is not None else {}
        return {
            "fail_reason": attrs.get(FAIL_REASON_ATTR),
            "stopped_at_epoch": attrs.get(STOPPED_AT_ATTR),
            "forked_from": attrs.get(FORKED_FROM_ATTR),
            "interrupted": trial is not None and self.state_of(trial) == "INTERRUPTED",
            "retried": number in self.retried,
        }

    @cached_property
    def summary(self) -> StudySummary:
        front = self.ranking
        times = [t.datetime_complete or t.datetime_start for t in self.trials]
        known = [t for t in times if t is not None]
        starts = [t.datetime_start for t in self.trials if t.datetime_start is not None]
        box = front.box.as_dict(list(self.objectives)) if front.box is not None else {}
        return StudySummary(
            name=self.name,
            objectives=dict(self.objectives),
            trials_by_state=dict(self.counts),
            pareto_size=len(front.pareto),
            hypervolume=front.hypervolume,
            created=min(starts) if starts else None,
            updated=max(known) if known else None,
            mlflow_experiment_id=self.attrs.get(EXPERIMENT_ATTR),
            mlflow_parent_run_id=self.attrs.get(PARENT_RUN_ATTR),
            stop_reason=self.attrs.get(STOP_REASON_ATTR),
            n_feasible=len(self.candidates(feasible_only=True)),
            n_retried=len(self.retried),
            compute=self.compute,
            hypervolume_box=box,
        )


__all__ = ["StudySummary", "StudyView"]
