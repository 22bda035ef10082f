"""Opening a study: create it, or load it to resume; close what a dead driver left open."""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Iterable, Mapping
from typing import Any, cast

import optuna
from optuna.trial import TrialState
from paretotune.errors import SpecError
from paretotune.spaces import StudySpec, covering_choices
from paretotune.study._attrs import (
    INTERRUPTED_TRIALS_ATTR,
    RERUN_OF_ATTR,
    SPEC_ATTR,
    STUDY_UID_ATTR,
    interrupted_numbers,
    study_objectives,
)
from paretotune.study._samplers import build_sampler
from paretotune.study._storage import open_storage

# What a study's values and verdicts mean: a resume that changes one of these is refused
# (the readers, the MLflow tags and the driver would otherwise answer with different
# settings). The budget, the workers, the sampler, early stopping and the goal may change.
RESUME_FIXED = ("dataset", "space", "validation", "budget.epochs", "constraints", "seed")


def open_study(
    spec: StudySpec, objectives: dict[str, str], storage_url: str, fence: Any = None
) -> optuna.Study:
    """Create the study, or load it to resume; refuse a resume with other objectives or
    another of the settings `RESUME_FIXED` names.

    A study is created with Optuna's metric names set to the objectives; an older study
    that lacks them gains them on resume.

    Raises:
        SpecError: a study of that name exists with other objectives or settings.
    """
    storage = open_storage(storage_url, fence=fence)  # (a Redis lease's fence, see driver_lock)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if spec.name in optuna.get_all_study_names(storage):
        study = optuna.load_study(
            study_name=spec.name, storage=storage, sampler=build_sampler(spec)
        )
        stored = study_objectives(study)
        if stored != objectives:
            raise SpecError(
                [
                    f"name: study {spec.name!r} already exists in {storage_url} with objectives "
                    f"{stored}, but the spec asks for {objectives}; choose another name"
                ]
            )
        changed = changed_settings(study.user_attrs.get(SPEC_ATTR) or {}, spec)
        if changed:
            raise SpecError(
                [
                    f"{field}: study {spec.name!r} was run with {old!r}, this run asks for "
                    f"{new!r}; resume it with its own setting, or run a new study (--name)"
                    for field, old, new in changed
                ]
            )
        if study.metric_names is None:
            _set_metric_names(study, objectives)
        return study
    study = optuna.create_study(
        study_name=spec.name,
        storage=storage,
        sampler=build_sampler(spec),
        directions=cast(list[Any], list(objectives.values())),  # validated by spaces
    )
    _set_metric_names(study, objectives)
    study.set_user_attr(SPEC_ATTR, spec.model_dump(mode="json"))
    study.set_user_attr(STUDY_UID_ATTR, uuid.uuid4().hex)
    if spec.sampler.cover_choices:
        for partial in covering_choices(spec.space)[: spec.budget.trials]:
            study.enqueue_trial(partial, skip_if_exists=False)
    return study


def changed_settings(stored: Mapping[str, Any], spec: StudySpec) -> list[tuple[str, Any, Any]]:
    """The `RESUME_FIXED` settings ``spec`` gives other values than the study's stored
    spec: (dotted field, stored value, new value). Fields the stored spec lacks (a study
    from an older paretotune) are not compared."""
    old, new = _flat(stored), _flat(spec.model_dump(mode="json"))
    changed = []
    for field, value in old.items():
        if not field.startswith(RESUME_FIXED) or field not in new or new[field] == value:
            continue
        if field == "dataset.path" and _same_file(value, new[field]):
            continue
        changed.append((field, value, new[field]))
    return changed


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping):
        found: dict[str, Any] = {}
        for key, inner in value.items():
            found |= _flat(inner, f"{prefix}{key}.")
        return found
    return {prefix.removesuffix("."): value}


def _same_file(stored: Any, given: Any) -> bool:
    """A path stored relative (before specs resolved it against their folder) and the
    same file given absolute."""
    return isinstance(stored, str) and isinstance(given, str) and os.path.abspath(stored) == given


def _set_metric_names(study: optuna.Study, objectives: dict[str, str]) -> None:
    """Name the values after the objectives, so Optuna's own tools (optuna-dashboard,
    ``plot_pareto_front``) label their axes; experimental in Optuna, stable in use."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(list(objectives))


def close_interrupted(study: optuna.Study, trials: Mapping[int, dict[str, Any]]) -> None:
    """Close running trials as interrupted and queue their params again.

    ``trials`` maps trial numbers to their params. Each is first added to the study's
    interrupted list (so it never counts toward the budget), then told FAIL, then queued
    again: a crash between the steps leaves the trial RUNNING, and the next resume closes
    it once more, so nothing is lost or counted twice.
    """
    if not trials:
        return
    study.set_user_attr(INTERRUPTED_TRIALS_ATTR, sorted(interrupted_numbers(study) | set(trials)))
    for number, params in trials.items():
        study.tell(number, state=TrialState.FAIL, skip_if_finished=True)
        study.enqueue_trial(params, user_attrs={RERUN_OF_ATTR: number}, skip_if_exists=False)


def queued_reruns(study: optuna.Study) -> int:
    """Interrupted trials queued again and not started yet."""
    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    return sum(1 for trial in waiting if RERUN_OF_ATTR in trial.user_attrs)


def running_trials(study: optuna.Study) -> dict[int, dict[str, Any]]:
    """The trials the storage holds as RUNNING, by number, with their params."""
    stale: Iterable[Any] = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    return {trial.number: dict(trial.params) for trial in stale}
