"""What paretotune keeps in the Optuna storage beside params and values: the names of
its study and trial user attributes, and the readers that know their older forms.

The objectives are Optuna's own: ``study.metric_names`` with ``study.directions``.
Studies written before that kept them in the ``objectives`` user attribute, which is
still read.
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

# study user attributes
LEGACY_OBJECTIVES_ATTR = "objectives"  # {metric: direction}: studies before metric names
SPEC_ATTR = "spec"  # the validated spec as a dict
STUDY_UID_ATTR = "uid"  # a random id, also a tag of the MLflow parent run
PARENT_RUN_ATTR = "mlflow_parent_run_id"
EXPERIMENT_ATTR = "mlflow_experiment_id"
TRACKING_URI_ATTR = "mlflow_tracking_uri"
INTERRUPTED_TRIALS_ATTR = "interrupted_trials"  # numbers of trials closed as interrupted
RETRIED_TRIALS_ATTR = "retried_trials"  # numbers of attempts lost to a worker, run again
STOP_REASON_ATTR = "stop_reason"  # why the last run stopped: budget, timeout, goal, interrupted
GOAL_TRIAL_ATTR = "goal_met_by"  # the trial that met ``budget.stop_when``
# {trial number: {"latency_ms_isolated": …}}: the front's latencies measured again at the
# end of a run, with no trial running (trials are immutable once told, so it lives here)
ISOLATED_ATTR = "isolated_measurements"
# "late_run_ids.<first trial>": {trial number: MLflow run id} for trials told before
# MLflow answered their run id (a lagging store); trials are immutable once told, so
# these live on the study, a batch per attribute (each write is one bounded append)
LATE_RUN_IDS_PREFIX = "late_run_ids."

# trial user attributes
RUN_ID_ATTR = "mlflow_run_id"
# "metric.<name>": each final metric the trial reported, one attribute per metric (tools
# such as optuna-dashboard show them as columns; one dict attribute is one unreadable cell)
METRIC_ATTR_PREFIX = "metric."
LEGACY_METRICS_ATTR = "metrics"  # older studies kept every final metric in one dict
PARAMS_ATTR = "config"  # the full flat params, fixed ones included
FAIL_REASON_ATTR = "fail_reason"
CURVE_ATTR_PREFIX = "curve."  # "curve.<metric>": its per-epoch values (multi-objective)
LEGACY_INTERRUPTED_ATTR = "interrupted"  # older studies marked the trial itself
RUNG_ATTR_PREFIX = "rung."  # "rung.<k>": {"values": …, "promoted": …} (early stopping)
STOPPED_AT_ATTR = "stopped_at_epoch"  # a pruned trial: the epoch it was stopped after
EPOCHS_ATTR = "epochs_trained"
TRIAL_SECONDS_ATTR = "trial_seconds"  # the trial's time on its worker
STARTED_AT_ATTR = "started_at"  # Unix time its worker began it (Optuna's start is the ask)
ATTEMPT_ATTR = "attempt"  # 2, 3, …: a retry of the trial numbered RETRY_OF_ATTR
RETRY_OF_ATTR = "retry_of"
RERUN_OF_ATTR = "rerun_of"  # a trial queued again because trial N was interrupted
PLACEMENT_ATTR = "placement"  # Ray node ids: {"node": trained on, "latency_node": timed on}
# True: the trial sent a trained model (its MLflow run keeps it under ``model``); False:
# none (a custom objective, a failure). Absent on older studies: ask MLflow.
HAS_MODEL_ATTR = "has_model"
# A compression variant (``compression: {variants: [...]}``): the trial whose trained model
# it was forked from, and its compression; never asked of the sampler, added told.
FORKED_FROM_ATTR = "forked_from"
VARIANT_ATTR = "variant"


def is_variant(trial: FrozenTrial) -> bool:
    """Whether ``trial`` is a compression variant (a fork of a trained model), which the
    budget does not count."""
    return FORKED_FROM_ATTR in trial.user_attrs


FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def late_run_ids(study_attrs: dict[str, Any]) -> dict[int, str]:
    """The run ids recorded on the study for trials told before MLflow answered them."""
    found: dict[int, str] = {}
    for key, batch in study_attrs.items():
        if key.startswith(LATE_RUN_IDS_PREFIX) and isinstance(batch, dict):
            found |= {int(number): str(run_id) for number, run_id in batch.items()}
    return found


def set_trial_metrics(trial: optuna.Trial, metrics: dict[str, float]) -> None:
    """Keep a trial's final metrics, one ``metric.<name>`` attribute each (in one append
    on a journal, see `set_trial_attrs`)."""
    set_trial_attrs(trial, {METRIC_ATTR_PREFIX + name: value for name, value in metrics.items()})


def set_trial_attrs(trial: optuna.Trial, attrs: dict[str, Any]) -> None:
    """Set a trial's user attributes ``attrs``; on a journal storage in one append, one
    ``fsync`` (30 attributes one by one took 18.6 ms a trial on the development machine,
    in one append 1.4 ms). Other storages, or a journal whose internals are not as
    expected (`JOURNAL_BATCH_CHECKED_ON`), take them one by one."""
    if attrs and not _append_to_journal(trial, attrs):
        for key, value in attrs.items():
            trial.set_user_attr(key, value)


# The Optuna versions whose journal internals `_append_to_journal` was checked against (a
# test pins it: on another version, check the record format and add it here).
JOURNAL_BATCH_CHECKED_ON = ("5.",)


def _append_to_journal(trial: optuna.Trial, attrs: dict[str, Any]) -> bool:
    """Write ``attrs`` as the journal records Optuna's ``set_user_attr`` would, one per
    attribute, in a single append. Optuna has no batch call, so this goes through its
    journal's internals; False (nothing written) where they are not as expected, and the
    caller sets them one by one through the public API."""
    from optuna.storages import JournalStorage

    storage = trial.storage
    if not isinstance(storage, JournalStorage):
        return False
    if not optuna.__version__.startswith(JOURNAL_BATCH_CHECKED_ON):
        return False
    try:
        from optuna.storages.journal._storage import JournalOperation

        op_code = int(JournalOperation.SET_TRIAL_USER_ATTR)
        lock, backend = storage._thread_lock, storage._backend
        worker, sync = storage._replay_result.worker_id, storage._sync_with_backend
        cached = trial._cached_frozen_trial.user_attrs
        trial_id = trial._trial_id
    except (ImportError, AttributeError):
        return False
    record = {"op_code": op_code, "worker_id": worker, "trial_id": trial_id}
    logs = [record | {"user_attr": {key: value}} for key, value in attrs.items()]
    with lock:
        backend.append_logs(logs)
        sync()
    cached.update(attrs)
    return True


def trial_metrics(trial: FrozenTrial) -> dict[str, float]:
    """A trial's final metrics, in either form a study kept them."""
    metrics = dict(trial.user_attrs.get(LEGACY_METRICS_ATTR) or {})
    for key, value in trial.user_attrs.items():
        if key.startswith(METRIC_ATTR_PREFIX):
            metrics[key.removeprefix(METRIC_ATTR_PREFIX)] = value
    return metrics


def study_objectives(study: optuna.Study) -> dict[str, str]:
    """The study's objective names and directions, in value order."""
    directions = [d.name.lower() for d in study.directions]
    if study.metric_names is not None:
        return dict(zip(study.metric_names, directions, strict=True))
    stored = study.user_attrs.get(LEGACY_OBJECTIVES_ATTR)
    if stored:
        return dict(stored)
    return {f"value_{i}": d for i, d in enumerate(directions)}


def interrupted_numbers(study: optuna.Study) -> set[int]:
    """The trials a driver closed as interrupted (FAIL, queued again, not counted)."""
    return {int(n) for n in study.user_attrs.get(INTERRUPTED_TRIALS_ATTR) or ()}


def was_interrupted(trial: FrozenTrial, interrupted: set[int]) -> bool:
    return trial.number in interrupted or bool(trial.user_attrs.get(LEGACY_INTERRUPTED_ATTR))


def state_name(trial: FrozenTrial, interrupted: set[int]) -> str:
    """Its Optuna state's name, but ``INTERRUPTED`` for a trial a stop or a dead driver
    closed (Optuna holds it as FAIL; it is no failure of the trial's)."""
    if trial.state == TrialState.FAIL and was_interrupted(trial, interrupted):
        return "INTERRUPTED"
    return trial.state.name


def retried_numbers(study: optuna.Study) -> set[int]:
    """The attempts a lost worker failed and that were run again (not counted)."""
    return {int(n) for n in study.user_attrs.get(RETRIED_TRIALS_ATTR) or ()}


def finished_trials(study: optuna.Study) -> list[FrozenTrial]:
    """COMPLETE, PRUNED and FAIL trials, but not those failed by an interruption or
    retried."""
    run_again = interrupted_numbers(study) | retried_numbers(study)
    return [
        trial
        for trial in study.get_trials(deepcopy=False, states=FINISHED_STATES)
        if not was_interrupted(trial, run_again)
    ]
