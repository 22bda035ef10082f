"""The Python API for finished and running studies: list them, read their fronts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import optuna
from optuna.trial import TrialState

from search._records import (
    EXPERIMENT_ATTR,
    PARENT_RUN_ATTR,
    FrontSummary,
    TrialRecord,
    rank_trials,
    record_of,
    study_objectives,
)
from search._storage import open_storage, resolve_storage_url, resolve_tracking_uri


class StudyNotFoundError(LookupError):
    """No study of that name in the storage; the message lists the ones that exist."""


@dataclass(frozen=True)
class StudySummary:
    """One line about a study: its objectives, trials by state, front size and quality."""

    name: str
    objectives: dict[str, str]
    trials_by_state: dict[str, int]
    pareto_size: int
    hypervolume: float
    created: datetime | None
    updated: datetime | None
    mlflow_experiment_id: str | None
    mlflow_parent_run_id: str | None


class Client:
    """Reads studies from an Optuna storage; MLflow ids come from the stored mapping.

    Args:
        storage: Optuna storage URL (default ``$PARETOTUNE_STORAGE`` or the journal file).
        tracking_uri: MLflow URI (default ``$MLFLOW_TRACKING_URI`` or ``sqlite:///mlflow.db``).
    """

    def __init__(self, storage: str | None = None, tracking_uri: str | None = None):
        self.storage_url = resolve_storage_url(storage)
        self.tracking_uri = resolve_tracking_uri(tracking_uri)
        self._storage = open_storage(self.storage_url)

    def study_names(self) -> list[str]:
        return sorted(optuna.get_all_study_names(self._storage))

    def _study(self, name: str) -> optuna.Study:
        names = self.study_names()
        if name not in names:
            known = ", ".join(names) or "none"
            raise StudyNotFoundError(
                f"study {name!r} not found in {self.storage_url} (studies there: {known})"
            )
        return optuna.load_study(study_name=name, storage=self._storage)

    def studies(self) -> list[StudySummary]:
        """A summary of every study in the storage, by name."""
        return [self.summary(name) for name in self.study_names()]

    def summary(self, name: str) -> StudySummary:
        study = self._study(name)
        trials = study.get_trials(deepcopy=False)
        front = rank_trials(trials, study_objectives(study))
        by_state: dict[str, int] = {}
        for trial in trials:
            by_state[trial.state.name] = by_state.get(trial.state.name, 0) + 1
        times = [t.datetime_complete or t.datetime_start for t in trials]
        times = [t for t in times if t is not None]
        starts = [t.datetime_start for t in trials if t.datetime_start is not None]
        return StudySummary(
            name=name,
            objectives=front.objectives,
            trials_by_state=by_state,
            pareto_size=len(front.pareto),
            hypervolume=front.hypervolume,
            created=min(starts) if starts else None,
            updated=max(times) if times else None,
            mlflow_experiment_id=study.user_attrs.get(EXPERIMENT_ATTR),
            mlflow_parent_run_id=study.user_attrs.get(PARENT_RUN_ATTR),
        )

    def front(self, name: str) -> FrontSummary:
        """Every complete trial of the study, ranked, with the front's hypervolume."""
        study = self._study(name)
        return rank_trials(study.get_trials(deepcopy=False), study_objectives(study))

    def pareto_front(self, name: str) -> list[TrialRecord]:
        """The Pareto-optimal trials of the study, by trial number."""
        return sorted(self.front(name).pareto, key=lambda r: r.number)

    def trials(self, name: str) -> list[TrialRecord]:
        """Every trial of the study, whatever its state, by trial number."""
        study = self._study(name)
        objectives = study_objectives(study)
        ranks = {r.number: r.pareto_rank for r in self.front(name).records}
        return [
            record_of(t, objectives, ranks.get(t.number)) for t in study.get_trials(deepcopy=False)
        ]

    def trial(self, name: str, number: int) -> TrialRecord:
        for record in self.trials(name):
            if record.number == number:
                return record
        raise LookupError(f"study {name!r} has no trial {number}")


__all__ = ["Client", "StudyNotFoundError", "StudySummary", "TrialState"]
