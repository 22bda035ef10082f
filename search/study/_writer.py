"""The one writer of what paretotune keeps in a study beside Optuna's params and values
(the twin of `paretotune.results.study_view.StudyView`, which reads it): the study's
MLflow ids, its retried trials, why its last run stopped, the latencies measured again in
isolation, and each trial's attributes. A trial's attributes at its end go to the storage
in one write (one journal append) before it is told.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial
from paretotune.study._attrs import (
    EPOCHS_ATTR,
    EXPERIMENT_ATTR,
    FAIL_REASON_ATTR,
    FORKED_FROM_ATTR,
    GOAL_TRIAL_ATTR,
    HAS_MODEL_ATTR,
    ISOLATED_ATTR,
    LATE_RUN_IDS_PREFIX,
    METRIC_ATTR_PREFIX,
    PARAMS_ATTR,
    PARENT_RUN_ATTR,
    PLACEMENT_ATTR,
    RETRIED_TRIALS_ATTR,
    RUN_ID_ATTR,
    STARTED_AT_ATTR,
    STOP_REASON_ATTR,
    STOPPED_AT_ATTR,
    TRACKING_URI_ATTR,
    TRIAL_SECONDS_ATTR,
    VARIANT_ATTR,
    retried_numbers,
    set_trial_attrs,
)

FAIL_REASON_CHARS = 2000  # a longer reason is cut (a traceback's head says what failed)


@dataclass(frozen=True)
class TrialEnd:
    """What a trial leaves in the storage when it ends (see `StudyWriter.trial_ended`)."""

    epochs: int
    trial_seconds: float
    started_at: float = 0.0  # Unix time its worker began it (0: unknown, not written)
    placement: Mapping[str, str] | None = None
    metrics: Mapping[str, float] | None = None  # final metrics, one attribute each
    curves: Mapping[str, list[Any]] | None = None  # attribute name -> per-epoch values
    stopped_at: int | None = None  # stopped early after this epoch
    fail_reason: str | None = None
    has_model: bool = False  # it sent a trained model (MLflow keeps it in the trial's run)


class StudyWriter:
    """Writes paretotune's attributes of ``study``; the driver's only way to them."""

    def __init__(self, study: optuna.Study):
        self.study = study

    # -- the study ---------------------------------------------------------------------
    def tracked_at(self, parent_run_id: str, tracking_uri: str | None) -> None:
        self.study.set_user_attr(PARENT_RUN_ATTR, parent_run_id)
        self.study.set_user_attr(TRACKING_URI_ATTR, tracking_uri)

    def experiment(self, experiment_id: str) -> None:
        self.study.set_user_attr(EXPERIMENT_ATTR, experiment_id)

    def retried(self, number: int) -> None:
        """Trial ``number`` was an attempt lost with its worker and run again."""
        numbers = retried_numbers(self.study) | {number}
        self.study.set_user_attr(RETRIED_TRIALS_ATTR, sorted(numbers))

    def stopped(self, reason: str, goal_met_by: int | None) -> None:
        """Why the last run ended (budget, timeout, goal, interrupted, failed)."""
        self.study.set_user_attr(STOP_REASON_ATTR, reason)
        if goal_met_by is not None:
            self.study.set_user_attr(GOAL_TRIAL_ATTR, goal_met_by)

    def isolated(self, measured: Mapping[int, Mapping[str, float]]) -> None:
        """Latencies measured again with no trial running, kept beside earlier ones."""
        kept = dict(self.study.user_attrs.get(ISOLATED_ATTR) or {})
        kept |= {str(n): dict(m) for n, m in measured.items()}
        self.study.set_user_attr(ISOLATED_ATTR, kept)

    def late_run_ids(self, run_ids: Mapping[int, str]) -> None:
        """Run ids that MLflow answered after their trials were told, as one batch."""
        if run_ids:
            batch = {str(n): run_ids[n] for n in sorted(run_ids)}
            self.study.set_user_attr(f"{LATE_RUN_IDS_PREFIX}{min(run_ids)}", batch)

    # -- its trials --------------------------------------------------------------------
    @staticmethod
    def asked(trial: optuna.Trial, params: Mapping[str, Any]) -> None:
        """The full flat params of a trial just asked (fixed ones too)."""
        trial.set_user_attr(PARAMS_ATTR, dict(params))

    @staticmethod
    def run_id(trial: optuna.Trial, run_id: str) -> None:
        trial.set_user_attr(RUN_ID_ATTR, run_id)

    @staticmethod
    def attrs(trial: optuna.Trial, attrs: Iterable[tuple[str, Any]]) -> None:
        """Other attributes (early stopping's rung records), in one write."""
        set_trial_attrs(trial, dict(attrs))

    @staticmethod
    def trial_ended(trial: optuna.Trial, end: TrialEnd) -> dict[str, Any]:
        """Everything ``end`` holds, in one write, before the trial is told; returns the
        attributes written."""
        attrs = _end_attrs(end)
        set_trial_attrs(trial, attrs)
        return attrs

    def forked(self, base: optuna.Trial, fork: Fork, end: TrialEnd) -> tuple[int, dict[str, Any]]:
        """A compression variant of ``base``'s trained model, added to the study as a
        COMPLETE trial (Optuna's `create_trial`, one storage write): ``base``'s Optuna
        params and the fork's compression, and every attribute ``end`` holds. Returns its
        number and the attributes written."""
        attrs = _end_attrs(end) | {
            PARAMS_ATTR: dict(fork.params),
            FORKED_FROM_ATTR: base.number,
            VARIANT_ATTR: fork.compression,
        }
        frozen = optuna.trial.create_trial(
            params={**base.params, "compression": fork.compression},
            distributions={**base.distributions, "compression": fork.distribution},
            values=fork.values,
            user_attrs=attrs,
            constraints=None if fork.constraints is None else constraint_values(fork.constraints),
        )
        return _add_numbered(self.study, frozen), attrs


@dataclass(frozen=True)
class Fork:
    """What `StudyWriter.forked` adds: the variant's full flat params, its compression
    (an Optuna param of every variant, over ``distribution``: none and the variants),
    its objective values and its constraint violations (None without constraints)."""

    compression: str
    params: Mapping[str, Any]
    distribution: optuna.distributions.CategoricalDistribution
    values: list[float]
    constraints: list[float] | None = None


def _end_attrs(end: TrialEnd) -> dict[str, Any]:
    attrs: dict[str, Any] = dict(end.curves or {})
    attrs |= {EPOCHS_ATTR: end.epochs, TRIAL_SECONDS_ATTR: end.trial_seconds}
    attrs[HAS_MODEL_ATTR] = end.has_model
    if end.started_at:
        attrs[STARTED_AT_ATTR] = end.started_at
    if end.placement:
        attrs[PLACEMENT_ATTR] = dict(end.placement)
    attrs |= {METRIC_ATTR_PREFIX + k: v for k, v in (end.metrics or {}).items()}
    if end.stopped_at is not None:
        attrs[STOPPED_AT_ATTR] = end.stopped_at
    if end.fail_reason is not None:
        attrs[FAIL_REASON_ATTR] = end.fail_reason[:FAIL_REASON_CHARS]
    return attrs


def _add_numbered(study: optuna.Study, frozen: FrozenTrial) -> int:
    """``study.add_trial(frozen)``, returning the new trial's number. Optuna's
    ``add_trial`` returns nothing; its storage's ``create_new_trial`` returns the trial's
    id, but the study's storage and id are internals: where they are not as expected,
    ``add_trial`` and the newest trial's number (the driver is the study's one writer)."""
    if len(frozen.values or ()) != len(study.directions):
        raise ValueError(f"a variant with {frozen.values} for {len(study.directions)} objectives")
    try:
        storage, study_id = study._storage, study._study_id
    except AttributeError:
        study.add_trial(frozen)
        return study.get_trials(deepcopy=False)[-1].number
    return storage.get_trial_number_from_id(
        storage.create_new_trial(study_id, template_trial=frozen)
    )


def constraint_values(violations: list[float]) -> dict[str, float]:
    """Violations (one per constraint, 0 where it holds) as Optuna's constraint values,
    keyed by position: studies that kept them as one list read back the same keys."""
    return {str(i): v for i, v in enumerate(violations)}


__all__ = ["Fork", "StudyWriter", "TrialEnd", "constraint_values"]
