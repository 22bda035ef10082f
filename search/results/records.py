"""Immutable views of a study's trials, read from the Optuna storage alone."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

import numpy as np
from optuna.trial import FrozenTrial, TrialState
from paretotune.results.noise import rank_within_noise
from paretotune.results.pareto import HypervolumeBox, nondominated_ranks
from paretotune.study._attrs import (
    EPOCHS_ATTR,
    PARAMS_ATTR,
    RUN_ID_ATTR,
    STOPPED_AT_ATTR,
    TRIAL_SECONDS_ATTR,
    trial_metrics,
)

HV_BOUND_TRIALS = 10  # the first trials to complete fix the hypervolume's normalisation
_NEVER = datetime.max


@dataclass(frozen=True)
class TrialRecord:
    """One trial as users see it. ``values`` maps objective name -> value (COMPLETE only).
    ``state`` is Optuna's (``COMPLETE``, ``PRUNED``, ``FAIL``, …), but ``INTERRUPTED``
    where a `Client` knows a stopped or dead driver closed the trial (Optuna: FAIL).

    ``feasible`` says whether the trial meets the spec's ``constraints`` (always true
    without any); ``model_uri`` is its trained model, ``runs:/<run id>/model``: MLflow
    resolves it to the logged MLflow model where the trial has one (Pareto-optimal and
    registered trials), else to the run's raw ``model/`` artifacts (`Client.load_model`
    loads both). Trials of older studies, which did not record whether they sent a
    model, get their run's ``paretotune.model_uri`` tag instead.
    """

    number: int
    state: str
    params: MappingProxyType
    values: MappingProxyType
    metrics: MappingProxyType
    mlflow_run_id: str | None
    pareto_rank: int | None = None
    feasible: bool = True
    model_uri: str | None = None
    study: str | None = None
    within_noise_of: int | None = None  # the front member beating it within noise (`noise`)

    def as_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "state": self.state,
            "params": dict(self.params),
            "values": dict(self.values),
            "metrics": dict(self.metrics),
            "mlflow_run_id": self.mlflow_run_id,
            "pareto_rank": self.pareto_rank,
            "feasible": self.feasible,
            "model_uri": self.model_uri,
            "study": self.study,
            "within_noise_of": self.within_noise_of,
        }


class TrialSet(tuple[TrialRecord, ...]):
    """An immutable sequence of trial records that can become a pandas table."""

    def to_pandas(self) -> Any:
        """One row per trial: number, state, rank, feasibility, objective values, every
        other metric as ``metrics.<name>``, params as ``params.<name>``, run id, model URI."""
        import pandas as pd

        rows = []
        for r in self:
            row: dict[str, Any] = {
                "number": r.number,
                "state": r.state,
                "pareto_rank": r.pareto_rank,
                "within_noise_of": r.within_noise_of,
                "feasible": r.feasible,
                **r.values,
            }
            row |= {f"metrics.{k}": v for k, v in r.metrics.items() if k not in r.values}
            row |= {f"params.{k}": v for k, v in r.params.items()}
            row |= {"mlflow_run_id": r.mlflow_run_id, "model_uri": r.model_uri}
            rows.append(row)
        return pd.DataFrame(rows)


@dataclass(frozen=True)
class FrontSummary:
    """The ranked complete trials of a study and the hypervolume of its front: the share
    of ``box`` it dominates, in [0, 1] (`HypervolumeBox`; None before any trial
    completed)."""

    objectives: dict[str, str]
    records: list[TrialRecord] = field(default_factory=list)
    hypervolume: float = 0.0
    box: HypervolumeBox | None = None

    @property
    def pareto(self) -> list[TrialRecord]:
        return [r for r in self.records if r.pareto_rank == 0]

    def box_words(self) -> str:
        """The box the hypervolume is a share of, objective by objective (ideal..worst)."""
        return self.box.words(list(self.objectives)) if self.box is not None else "-"


def record_of(
    trial: FrozenTrial,
    objectives: dict[str, str],
    rank: int | None = None,
    *,
    study: str | None = None,
    state: str | None = None,
) -> TrialRecord:
    """The user-facing record of one frozen trial (``state``: its name as shown, default
    Optuna's)."""
    values = {}
    if trial.state == TrialState.COMPLETE and trial.values is not None:
        values = dict(zip(objectives, trial.values, strict=True))
    params = trial.user_attrs.get(PARAMS_ATTR) or trial.params
    return TrialRecord(
        number=trial.number,
        state=state or trial.state.name,
        params=MappingProxyType(dict(params)),
        values=MappingProxyType(values),
        metrics=MappingProxyType(trial_metrics(trial)),
        mlflow_run_id=trial.user_attrs.get(RUN_ID_ATTR),
        pareto_rank=rank,
        study=study,
    )


def rank_trials(
    trials: list[FrozenTrial], objectives: dict[str, str], study: str | None = None
) -> FrontSummary:
    """Rank the complete trials by non-domination, differences within measurement noise
    as ties (`rank_within_noise`), and measure the exact front's hypervolume as the share
    of the study's `hypervolume_box` it dominates (``study``: the records' study name)."""
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.values is not None]
    if not complete:
        return FrontSummary(objectives)
    directions = list(objectives.values())
    values = np.array([t.values for t in complete], dtype=float)
    ranks = nondominated_ranks(values, directions)
    records = [
        record_of(t, objectives, int(r), study=study) for t, r in zip(complete, ranks, strict=True)
    ]
    records = rank_within_noise(records, objectives)
    box = hypervolume_box(complete, directions)
    return FrontSummary(objectives, records, box.share(values[ranks == 0]), box)


def hypervolume_box(complete: list[FrozenTrial], directions: list[str]) -> HypervolumeBox:
    """The box of a study's hypervolume: made from the first ``HV_BOUND_TRIALS`` trials
    to complete (all of them while fewer exist), so it no longer moves once that many
    are complete (see `HypervolumeBox.from_values`)."""
    first = sorted(complete, key=completion_order)[:HV_BOUND_TRIALS]
    return HypervolumeBox.from_values([t.values for t in first], directions)


def finished_count(trials: list[FrozenTrial]) -> int:
    """The trials that ended (interrupted and retried attempts included): the step a
    study's front is charted at."""
    return sum(1 for trial in trials if trial.state.is_finished())


def completion_order(trial: FrozenTrial) -> tuple[datetime, int]:
    """Trials in the order they completed (the first ones fix the hypervolume's
    normalisation)."""
    return (trial.datetime_complete or _NEVER, trial.number)


@dataclass(frozen=True)
class Compute:
    """What a study's trials spent: epochs trained and trial-seconds (time on workers), and
    what early stopping saved: the epochs stopped trials did not train, and those epochs'
    seconds at the trial's own pace."""

    epochs: int = 0
    trial_seconds: float = 0.0
    epochs_saved: int = 0
    seconds_saved: float = 0.0

    def as_metrics(self) -> dict[str, float]:
        return {
            "epochs_trained": float(self.epochs),
            "trial_seconds": self.trial_seconds,
            "epochs_saved": float(self.epochs_saved),
            "trial_seconds_saved": self.seconds_saved,
        }

    def __add__(self, other: Compute) -> Compute:
        return Compute(
            self.epochs + other.epochs,
            self.trial_seconds + other.trial_seconds,
            self.epochs_saved + other.epochs_saved,
            self.seconds_saved + other.seconds_saved,
        )


def compute_of(trials: list[FrozenTrial], epochs_per_trial: int) -> Compute:
    """The compute of ``trials`` (every trial that ran counts, interrupted ones too)."""
    total = Compute()
    for trial in trials:
        total += trial_compute(trial.user_attrs, epochs_per_trial)
    return total


def trial_compute(attrs: dict[str, Any], epochs_per_trial: int) -> Compute:
    """What one trial spent, from its user attributes (see `Compute`)."""
    trained = int(attrs.get(EPOCHS_ATTR, 0))
    spent = float(attrs.get(TRIAL_SECONDS_ATTR, 0.0))
    if attrs.get(STOPPED_AT_ATTR) is None or not trained:
        return Compute(trained, spent)
    left = max(0, epochs_per_trial - trained)
    return Compute(trained, spent, left, spent / trained * left)
