"""The trial runs of one study: made, filled with a trial's outcome, closed as
interrupted, and made to agree with Optuna again by `repair`."""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paretotune.execution import TrialReport
from paretotune.tracking._base import FinishedTrial
from paretotune.tracking.mlflow.guard import lost_contact
from paretotune.tracking.mlflow.schema import (
    DESCRIPTIVE_PARAMS,
    ERROR_TAG,
    EXAMPLE_FILE,
    FORKED_FROM_LABEL,
    LABEL_TAG_PREFIX,
    MAX_TAG_CHARS,
    MODEL_DIR,
    MODEL_URI_TAG,
    PARENT_RUN_TAG,
    PLACEMENT_TAG_PREFIX,
    RAW_MODEL_FILE,
    RECOVERED_TAG,
    RUN_STATUS,
    STATE_TAG,
    STOPPED_AT_TAG,
    STUDY_RUN_TAG,
    STUDY_TAG,
    TRIAL_ARTIFACT,
    TRIAL_TAG,
    raw_model_uri,
)
from paretotune.tracking.mlflow.unlogged import HeldTrial, UnloggedTrials

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from paretotune.tracking.mlflow.front import ParetoTags

MLFLOW_BATCH = 1000  # metrics per log_batch (MLflow's limit)


@dataclass
class StudyRecord:
    """The study's MLflow ids and its trials' runs, as the logging process knows them."""

    name: str = ""
    experiment_id: str = ""
    parent_run_id: str | None = None
    objectives: dict[str, str] = field(default_factory=dict)  # metric -> direction, in order
    run_ids: dict[int, str] = field(default_factory=dict)  # trial number -> run id
    raw_models: set[str] = field(default_factory=set)  # runs given a raw model here
    # a resumed study: when its record was last closed (ms), the last step it charted
    reopened_end_ms: int | None = None
    charted_until: int = -1


class TrialRuns:
    """Writes the trial runs of ``study``; calls raise, the recorder guards them."""

    def __init__(self, client: MlflowClient, study: StudyRecord, pareto: ParetoTags):
        self._client = client
        self._study = study
        self._pareto = pareto
        self._starts: dict[str, int] = {}  # run id -> its start (ms), for runs made here

    def create(
        self,
        number: int,
        params: dict[str, Any],
        labels: dict[str, str] | None = None,
        started_at: float = 0.0,
    ) -> str:
        """A nested run for trial ``number`` that starts at ``started_at`` (Unix time; 0:
        now), tagged with the study, trial and choices, and ``paretotune.<label>`` for
        each of ``labels``."""
        tags = {STUDY_TAG: self._study.name, TRIAL_TAG: str(number), STATE_TAG: "RUNNING"}
        tags |= {LABEL_TAG_PREFIX + k: v for k, v in (labels or {}).items()}
        if self._study.parent_run_id:
            tags[PARENT_RUN_TAG] = self._study.parent_run_id
        forked_from = (labels or {}).get(FORKED_FROM_LABEL)
        base_run = self._study.run_ids.get(int(forked_from)) if forked_from else None
        if base_run and self._study.parent_run_id:  # a variant: under its trial's run
            tags |= {PARENT_RUN_TAG: base_run, STUDY_RUN_TAG: self._study.parent_run_id}
        tags |= {key: str(params[key]) for key in DESCRIPTIVE_PARAMS if key in params}
        run = self._client.create_run(
            self._study.experiment_id,
            start_time=_ms(started_at),
            run_name=f"trial-{number:04d}",
            tags=tags,
        )
        self._study.run_ids[number] = run.info.run_id
        self._starts[run.info.run_id] = run.info.start_time
        return run.info.run_id

    def log_metrics(self, run_id: str, metrics: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, v, now, 0) for k, v in metrics.items() if _finite(v)]
        self._client.log_batch(run_id, metrics=batch)

    def log_params(self, run_id: str, params: dict[str, Any]) -> None:
        self._client.log_batch(run_id, params=param_list(params))

    def record_outcome(
        self,
        number: int,
        run_id: str,
        state: str,
        report: TrialReport,
        params: dict[str, Any] | None = None,
        extra_tags: Sequence[Any] = (),
        *,
        with_curves: bool = True,
        told_at: float = 0.0,
    ) -> Recorded:
        """Artifacts, then metrics (the objectives first), curves, params and tags in one
        batch, then the run's end: when the trial ended on its worker, else when the
        driver ``told_at`` its outcome (see `trial_end`). The artifacts fail alone: the
        rest is logged and the run ends as Optuna has it (the `Recorded` says why they
        were not). When the batch fails the run ends FAILED (unless the server is gone)
        and the failure is raised."""
        ended = max(trial_end(report, told_at), self._starts.get(run_id, 0))
        artifacts_error = self.log_artifacts(run_id, report)
        model_logged = artifacts_error is None and report.model_bytes is not None
        try:
            self._log_outcome(
                number,
                run_id,
                state,
                report,
                params,
                extra_tags,
                model_logged,
                with_curves,
                ended,
            )
        except Exception as err:
            if not lost_contact(err):
                self._client.set_terminated(run_id, "FAILED", end_time=ended)
            raise
        self._client.set_terminated(run_id, RUN_STATUS.get(state, "FAILED"), end_time=ended)
        return Recorded(artifacts_error)

    def log_artifacts(self, run_id: str, report: TrialReport) -> str | None:
        """The trial's ``trial.json`` and raw model; why they could not be logged, or None.
        A server out of reach is raised (the circuit breaker must hear of it)."""
        try:
            if report.artifacts:  # one file, one call: notes, confusion matrices, clocks, ...
                self._client.log_dict(run_id, report.artifacts, TRIAL_ARTIFACT)
            if report.model_bytes is not None:
                self._log_raw_model(run_id, report)
                self._study.raw_models.add(run_id)
        except Exception as err:
            if lost_contact(err):
                raise
            return f"{type(err).__name__}: {err}"
        return None

    def _log_outcome(
        self,
        number: int,
        run_id: str,
        state: str,
        report: TrialReport,
        params: dict[str, Any] | None,
        extra_tags: Sequence[Any],
        model_logged: bool,
        with_curves: bool,
        ended: int,
    ) -> None:
        from mlflow.entities import Metric, RunTag

        # the objectives first: MLflow's compare view picks the first metric a run logged
        final = {m: report.metrics[m] for m in self._study.objectives if m in report.metrics}
        final |= report.metrics
        metrics = [Metric(k, v, ended, 0) for k, v in final.items() if _finite(v)]
        for epoch, entry in enumerate(report.history if with_curves else ()):
            metrics += [Metric(k, v, ended, epoch) for k, v in entry.items() if _finite(v)]
        tags = [RunTag(STATE_TAG, state), *extra_tags]
        rank = self._pareto.known_rank(number)  # a front is queued: tag now, not later
        rank = report.pareto_rank if rank is None else rank  # joined the front when told
        told_on_front = rank is not None or (state == "COMPLETE" and report.told)
        pareto = self._pareto.tags(rank) if told_on_front else []
        if report.error:
            tags.append(RunTag(ERROR_TAG, report.error[:MAX_TAG_CHARS]))
        if report.stopped_at is not None:
            tags.append(RunTag(STOPPED_AT_TAG, str(report.stopped_at)))
        tags += [RunTag(PLACEMENT_TAG_PREFIX + k, v) for k, v in report.placement.items()]
        if model_logged:
            tags.append(RunTag(MODEL_URI_TAG, raw_model_uri(run_id)))
        # One transaction for params, tags and up to 1000 metrics (MLflow's batch limit).
        self._client.log_batch(
            run_id,
            metrics=metrics[:MLFLOW_BATCH],
            params=param_list(params or {}),
            tags=tags + pareto,
        )
        if told_on_front:
            self._pareto.logged(run_id, rank)
        for start in range(MLFLOW_BATCH, len(metrics), MLFLOW_BATCH):
            self._client.log_batch(run_id, metrics=metrics[start : start + MLFLOW_BATCH])

    def _log_raw_model(self, run_id: str, report: TrialReport) -> None:
        """``model/model.pt`` (the model file: weights, recipe) and ``model/input_example.npy``."""
        import numpy as np

        with tempfile.TemporaryDirectory() as folder:
            assert report.model_bytes is not None  # checked by the caller
            (Path(folder) / RAW_MODEL_FILE).write_bytes(report.model_bytes)
            if report.input_example is not None:
                np.save(
                    Path(folder) / EXAMPLE_FILE,
                    np.asarray(report.input_example),
                    allow_pickle=False,
                )
            self._client.log_artifacts(run_id, folder, MODEL_DIR)

    def mark_interrupted(self, numbers: list[int], at: float = 0.0) -> None:
        """End the study's runs of ``numbers`` still RUNNING as KILLED, state INTERRUPTED,
        at ``at`` (see `_close_interrupted`)."""
        wanted = {str(n) for n in numbers}
        running = self._client.search_runs(
            [self._study.experiment_id],
            filter_string=f"tags.`{PARENT_RUN_TAG}` = '{self._study.parent_run_id}' "
            "AND attributes.status = 'RUNNING'",
            max_results=10_000,
        )
        for run in running:
            if run.data.tags.get(TRIAL_TAG) in wanted:
                self._close_interrupted(run, at)

    def _close_interrupted(self, run: Any, at: float = 0.0) -> None:
        """End ``run`` as KILLED, state INTERRUPTED: at ``at`` (Unix time the driver closed
        its trial; 0: now), or, for a run an earlier driver left open, when the study's
        record was last closed (the logging process outlives its driver: that is when
        the trial was last watched)."""
        ended = _ms(at) or int(time.time() * 1000)
        before = self._study.reopened_end_ms
        if before is not None and run.info.start_time <= before < ended:
            ended = before
        self._client.set_tag(run.info.run_id, STATE_TAG, "INTERRUPTED")
        self._client.set_terminated(run.info.run_id, "KILLED", end_time=ended)

    def repair(
        self,
        finished: list[FinishedTrial],
        unlogged: UnloggedTrials,
        made: dict[int, str],
        repaired: list[int],
        close_unfinished: bool = True,
    ) -> list[str]:
        """Make MLflow agree with Optuna: record again each of the ``finished`` trials
        whose run is missing or disagrees with it (state, status, final metrics), and each
        trial held in ``unlogged``, from there (curves, artifacts and model included);
        with ``close_unfinished`` (no trial is running), end runs still RUNNING of trials
        that are not finished as INTERRUPTED. Trials
        rebuilt from Optuna alone are tagged ``paretotune.recovered`` (no model). The runs
        made go into ``made``, the trials recorded into ``repaired``; returns why
        artifacts could still not be logged."""
        from mlflow.entities import RunTag

        runs = self.trial_runs()
        from_optuna = {trial.number: trial for trial in finished}
        artifact_errors = []
        for number in sorted(set(from_optuna) | set(unlogged.numbers())):
            held, trial, run = unlogged.get(number), from_optuna.get(number), runs.get(number)
            if held is None and (trial is None or (run is not None and agrees(run, trial))):
                continue
            if held is not None and held.artifacts_only and run is not None:
                error = self._log_held_artifacts(run.info.run_id, held.report)
            else:
                source = held or _held_from_optuna(trial)
                if run is None:
                    started = source.report.started_at
                    run_id = made[number] = self.create(number, source.params, None, started)
                else:
                    run_id = self._study.run_ids[number] = run.info.run_id
                tags = [] if held is not None else [RunTag(RECOVERED_TAG, "true")]
                has_curves = run is not None and _has_curves(run, source.report)
                error = self.record_outcome(
                    number,
                    run_id,
                    source.state,
                    source.report,
                    source.params,  # again on a run left open: its params call may have failed
                    tags,
                    with_curves=not has_curves,
                ).artifacts_error
            repaired.append(number)
            if error is None:
                unlogged.drop(number)
            else:
                artifact_errors.append(f"trial {number}: {error}")
        if close_unfinished:
            self._close_unfinished(runs, set(from_optuna) | set(unlogged.numbers()))
        return artifact_errors

    def _log_held_artifacts(self, run_id: str, report: TrialReport) -> str | None:
        error = self.log_artifacts(run_id, report)
        if error is None and report.model_bytes is not None:
            self._client.set_tag(run_id, MODEL_URI_TAG, raw_model_uri(run_id))
        return error

    def _close_unfinished(self, runs: dict[int, Any], finished: set[int]) -> None:
        """End as INTERRUPTED the runs still RUNNING whose trials are not finished: no
        trial runs while the records are repaired, so their driver is gone."""
        for number, run in runs.items():
            if number not in finished and run.info.status == "RUNNING":
                self._close_interrupted(run)

    def trial_runs(self) -> dict[int, Any]:
        """The study's trial runs (children of its parent run, and its compression
        variants' runs, nested under their trials'), by trial number."""
        found: dict[int, Any] = {}
        for tag in (PARENT_RUN_TAG, STUDY_RUN_TAG):
            token = None
            while True:
                page = self._client.search_runs(
                    [self._study.experiment_id],
                    filter_string=f"tags.`{tag}` = '{self._study.parent_run_id}'",
                    max_results=1000,
                    page_token=token,
                )
                for run in page:
                    number = run.data.tags.get(TRIAL_TAG)
                    if number is not None:
                        found[int(number)] = run
                token = page.token
                if not token:
                    break
        return found


@dataclass(frozen=True)
class Recorded:
    """A trial's outcome is logged; ``artifacts_error`` says why its artifacts were not."""

    artifacts_error: str | None = None


def agrees(run: Any, trial: FinishedTrial) -> bool:
    """Whether MLflow's ``run`` shows ``trial`` as Optuna holds it: status, state tag and
    every finite final metric."""
    if run.info.status != RUN_STATUS.get(trial.state, "FAILED"):
        return False
    if run.data.tags.get(STATE_TAG) != trial.state:
        return False
    logged = run.data.metrics
    return all(
        key in logged and math.isclose(logged[key], value, rel_tol=1e-9, abs_tol=1e-12)
        for key, value in trial.metrics.items()
        if _finite(value)
    )


def _has_curves(run: Any, report: TrialReport) -> bool:
    """Whether ``run`` already holds some of the report's per-epoch metrics (they are not
    logged twice)."""
    return any(key in run.data.metrics for entry in report.history for key in entry)


def _held_from_optuna(trial: FinishedTrial | None) -> HeldTrial:
    assert trial is not None  # a trial neither held nor finished is skipped by the caller
    report = TrialReport(
        trial.number,
        metrics=dict(trial.metrics),
        history=list(trial.history),
        error=trial.error,
        stopped_at=trial.stopped_at,
        placement=dict(trial.placement),
        started_at=trial.started_at,
        worker_time_s=trial.worker_time_s,
    )
    return HeldTrial(trial.number, trial.state, report, dict(trial.params))


def trial_end(report: TrialReport, told_at: float = 0.0) -> int:
    """When a trial's run ends (ms): when its worker finished it (its start there plus
    its time there), else when the driver ``told_at`` its outcome (a worker lost with its
    trial), else now."""
    if report.started_at > 0:
        return int((report.started_at + report.worker_time_s) * 1000)
    return _ms(told_at) or int(time.time() * 1000)


def _ms(seconds: float) -> int | None:
    """Unix time in seconds as MLflow's milliseconds; None for 0 (unknown)."""
    return int(seconds * 1000) if seconds > 0 else None


def param_list(params: dict[str, Any]) -> list[Any]:
    from mlflow.entities import Param

    return [Param(key, str(value)) for key, value in params.items()]


def _finite(value: float) -> bool:
    return value == value and value not in (float("inf"), float("-inf"))
