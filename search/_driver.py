"""The driver: owns the Optuna study, asks configs, dispatches them, tells results.

It is the single writer of the Optuna storage and the only caller of the tracker, so
neither sees concurrent writers. A study is resumed by running it again: finished
trials count toward the budget, and trials a crashed driver left RUNNING are closed as
interrupted and queued again with the same params.
"""

from __future__ import annotations

import math
import sys
import time
import uuid
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import optuna
from optuna.trial import TrialState
from pydantic import ValidationError

from search._executors import Executor, RayExecutor, start_ray_in_background, stop_ray
from search._mlflow_process import MlflowTracker
from search._pareto import RunningFront
from search._progress import StudyProgress, print_front
from search._records import (
    EXPERIMENT_ATTR,
    FAIL_REASON_ATTR,
    HV_BOUND_TRIALS,
    INTERRUPTED_ATTR,
    METRICS_ATTR,
    OBJECTIVES_ATTR,
    PARAMS_ATTR,
    PARENT_RUN_ATTR,
    RUN_ID_ATTR,
    SPEC_ATTR,
    STUDY_UID_ATTR,
    TRACKING_URI_ATTR,
    FrontSummary,
    TrialRecord,
    rank_trials,
)
from search._samplers import AutoSampler
from search._storage import open_storage, resolve_storage_url, resolve_tracking_uri
from search._tracking import FinishedTrial, FrontSnapshot, Tracker, TrackerNews
from search._worker import TrialReport, TrialTask, UserObjective
from spaces import (
    SpecError,
    StudySpec,
    covering_choices,
    format_validation_error,
    load_spec,
    sample_params,
)

_POLL_S = 0.2
FRONT_EVERY_S = 10.0  # how often the ranked front is republished while the study runs
_BACKLOG_NOTICE = 20  # trials MLflow may still have to record before closing says so
# A finished trial is told to Optuna once its MLflow run id is stored with it, but never
# held longer than this, nor while more than this many (or 2 per worker) finished
# trials wait.
_RUN_ID_WAIT_S = 30.0
_MAX_WAITING_FOR_RUN_ID = 8


@dataclass(frozen=True)
class StudyResult:
    """What `run_study` returns: where the study lives and its front when it stopped."""

    name: str
    storage: str
    tracking_uri: str | None
    objectives: dict[str, str]
    pareto: list[TrialRecord]
    n_complete: int
    n_failed: int
    n_pruned: int
    trials_run: int  # trials finished by this call (not by earlier runs of the study)
    wall_time_s: float
    hypervolume: float
    experiment_id: str | None = None
    parent_run_id: str | None = None
    tracking_errors: list[str] = field(default_factory=list)


def run_study(
    spec_or_path: str | Path | dict[str, Any] | StudySpec,
    objective: UserObjective | None = None,
    *,
    storage: str | None = None,
    tracking_uri: str | None = None,
    executor: Executor | None = None,
    tracker: Tracker | None = None,
    progress: bool = True,
    **overrides: Any,
) -> StudyResult:
    """Run (or resume) the study a spec describes, and return its result.

    Args:
        spec_or_path: a YAML path, a mapping, or a `StudySpec`.
        objective: replaces the built-in training objective; it takes the sampled params
            (a flat dict) and returns a dict of metric values holding every objective.
        storage: Optuna storage URL (default ``$PARETOTUNE_STORAGE`` or
            ``paretotune.journal``).
        tracking_uri: MLflow URI (default ``$MLFLOW_TRACKING_URI`` or
            ``sqlite:///mlflow.db``); ignored when ``tracker`` is given.
        executor: where trials run (default: a pool of Ray actors, one per worker).
        tracker: where trials are recorded (default: MLflow at ``tracking_uri``).
        progress: show the live progress bar and the closing table.
        overrides: ``trials``, ``epochs``, ``workers``, ``timeout_s``, ``device``, ``name``,
            ``seed``, ``sampler`` replace the spec's values.

    Raises:
        SpecError: the spec or an override is invalid, the dataset does not fit it, or a
            study of that name exists with other objectives. Nothing is created then (a
            local Ray started meanwhile is stopped again).
    """
    spec = _apply_overrides(load_spec(spec_or_path), overrides)
    # Ray starts while the dataset is checked and the study opens; if either fails, the
    # Ray started for it is stopped again (none of its processes is left behind).
    ray_starting = executor is None and start_ray_in_background(min_cpus=_ray_cpus(spec))
    try:
        objectives, context = _prepare(spec, objective)
        storage_url = resolve_storage_url(storage)
        study = _open_study(spec, objectives, storage_url)
    except BaseException:
        if ray_starting:
            stop_ray()
        raise
    if tracker is None:
        tracker = MlflowTracker(resolve_tracking_uri(tracking_uri))
    own_executor = executor is None
    driver = _Driver(spec, study, objectives, tracker, progress)
    status = "FAILED"
    try:
        if executor is None:  # actors start in the background while MLflow opens
            executor = RayExecutor(
                spec.resources.workers,
                context,
                objective,
                cpus_per_worker=spec.resources.cpus_per_trial,
                gpus_per_worker=spec.resources.gpus_per_trial,
            )
        driver.open()
        driver.loop(executor)
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        try:
            driver.abandon_in_flight()
            if own_executor and executor is not None:
                executor.shutdown()
            driver.repair_records()
            front = driver.publish_front(final=True)
        finally:
            driver.close_tracker(status)
    result = driver.result(storage_url, front)
    if progress:
        print_front(front, tracking_uri=tracker.location, experiment_id=result.experiment_id)
    return result


def _ray_cpus(spec: StudySpec) -> float:
    """The logical CPUs a local Ray needs for the spec's workers (as `RayExecutor` asks)."""
    return spec.resources.workers * spec.resources.cpus_per_trial


def _apply_overrides(spec: StudySpec, overrides: dict[str, Any]) -> StudySpec:
    try:
        return spec.with_overrides(**overrides)
    except ValidationError as err:
        raise SpecError(format_validation_error(err)) from None


def _prepare(spec: StudySpec, objective: UserObjective | None) -> tuple[dict[str, Any], Any]:
    """The study's objectives and the built-in objective's context; checks the dataset."""
    if objective is not None:
        return spec.resolved_objectives(), None
    import objectives as builtin

    dataset = spec.dataset.model_dump(exclude_none=True)
    try:
        info = builtin.dataset_info(dataset)
    except builtin.DatasetError as err:
        raise SpecError([str(err)]) from None
    problems = [
        f"space.architecture: {family!r} cannot apply to dataset {_dataset_name(spec)} "
        f"({_shape_words(info)})"
        for family in spec.space.architecture
        if not info.supports(family)
    ]
    chosen = spec.resolved_objectives(info.task)
    produced = builtin.task_metrics(info.task)
    problems += [
        f"objectives.{metric}: not produced by a {info.task} task "
        f"(dataset {_dataset_name(spec)}); it produces: {', '.join(sorted(produced))}"
        for metric in chosen
        if metric not in produced
    ]
    if problems:
        raise SpecError(problems)
    context = builtin.TrialContext(
        dataset=dataset,
        epochs=spec.budget.epochs,
        seed=spec.seed,
        device=spec.resources.device,
        kfold=spec.validation.kfold,
        val_fraction=spec.validation.holdout,
        test_fraction=spec.validation.test,
        num_threads=max(1, int(spec.resources.cpus_per_trial)),
    )
    return chosen, context


def _dataset_name(spec: StudySpec) -> str:
    return repr(spec.dataset.path or spec.dataset.source)


def _shape_words(info: Any) -> str:
    if info.image_shape:
        return f"images {info.image_shape}"
    return f"tabular, {info.n_features} features, no image or sequence shape"


def _sampler(spec: StudySpec) -> optuna.samplers.BaseSampler:
    settings = spec.sampler
    if settings.name == "random":
        return optuna.samplers.RandomSampler(seed=spec.seed)
    nsga2 = optuna.samplers.NSGAIISampler(population_size=settings.population_size, seed=spec.seed)
    if settings.name == "nsga2":
        return nsga2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        tpe = optuna.samplers.TPESampler(
            n_startup_trials=settings.startup_trials,
            multivariate=True,
            group=True,  # the space is conditional: each family/optimizer its own group
            constant_liar=True,  # concurrent workers: don't sample the same point twice
            seed=spec.seed,
        )
    if settings.name == "tpe":
        return tpe
    return AutoSampler(tpe, nsga2, switch_at=settings.switch_at)


def _open_study(spec: StudySpec, objectives: dict[str, str], storage_url: str) -> optuna.Study:
    """Create the study, or load it to resume; refuse a resume with other objectives."""
    storage = open_storage(storage_url)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    existing = {s.study_name for s in optuna.get_all_study_summaries(storage, False)}
    if spec.name in existing:
        study = optuna.load_study(study_name=spec.name, storage=storage, sampler=_sampler(spec))
        stored = study.user_attrs.get(OBJECTIVES_ATTR)
        if stored is not None and dict(stored) != objectives:
            raise SpecError(
                [
                    f"name: study {spec.name!r} already exists in {storage_url} with objectives "
                    f"{dict(stored)}, but the spec asks for {objectives}; choose another name"
                ]
            )
        return study
    study = optuna.create_study(
        study_name=spec.name,
        storage=storage,
        sampler=_sampler(spec),
        directions=cast(list[Any], list(objectives.values())),  # validated by spaces
    )
    study.set_user_attr(OBJECTIVES_ATTR, objectives)
    study.set_user_attr(SPEC_ATTR, spec.model_dump(mode="json"))
    study.set_user_attr(STUDY_UID_ATTR, uuid.uuid4().hex)
    if spec.sampler.cover_choices:
        for partial in covering_choices(spec.space)[: spec.budget.trials]:
            study.enqueue_trial(partial, skip_if_exists=False)
    return study


@dataclass
class _InFlight:
    trial: optuna.Trial
    params: dict[str, Any]
    run_id_known: bool = False  # the tracker answered (with a run id or with None)
    finished_at: float = math.inf


class _Driver:
    """The ask → dispatch → tell loop of one `run_study` call."""

    def __init__(
        self,
        spec: StudySpec,
        study: optuna.Study,
        objectives: dict[str, str],
        tracker: Tracker,
        progress: bool,
    ):
        self.spec = spec
        self.study = study
        self.objectives = objectives
        self.tracker = tracker
        self.show_progress = progress
        self.in_flight: dict[int, _InFlight] = {}  # running on a worker
        self.run_ids: dict[int, str] = {}  # MLflow run ids the tracker reported
        self.finished_untold: list[tuple[_InFlight, TrialReport]] = []
        self.started = time.perf_counter()
        self.finished_here = 0
        self.parent_run_id: str | None = None
        self.experiment_id: str | None = None
        self.front_size = RunningFront(list(objectives.values()))
        self._front_published_at = -math.inf
        self._finished_before: list[int] = []  # trials an earlier driver finished

    # -- set-up ------------------------------------------------------------------------
    def open(self) -> None:
        self.parent_run_id = self.study.user_attrs.get(PARENT_RUN_ATTR)
        self.experiment_id = self.study.user_attrs.get(EXPERIMENT_ATTR)
        self.tracker.open_study(
            self.spec.name,
            self.spec.model_dump(mode="json"),
            self.parent_run_id,
            self.study.user_attrs.get(STUDY_UID_ATTR),
        )
        self._recover_interrupted()
        self._finished_before = [t.number for t in self._finished_trials()]

    def _finished_trials(self) -> list[optuna.trial.FrozenTrial]:
        """COMPLETE, PRUNED and FAIL trials, but not those failed by an interruption."""
        finished = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        return [
            trial
            for trial in self.study.get_trials(deepcopy=False, states=finished)
            if not trial.user_attrs.get(INTERRUPTED_ATTR)
        ]

    def repair_records(self) -> None:
        """On a resumed study, have the tracker record again the earlier trials whose
        records a killed driver left missing or open. Done at the end, when a logging
        process the killed driver left behind has long finished what it was sent."""
        if not self._finished_before:
            return
        earlier = set(self._finished_before)
        self.tracker.repair(
            [
                FinishedTrial(
                    number=trial.number,
                    state=trial.state.name,
                    params=dict(trial.user_attrs.get(PARAMS_ATTR) or trial.params),
                    metrics=dict(trial.user_attrs.get(METRICS_ATTR) or {}),
                    error=trial.user_attrs.get(FAIL_REASON_ATTR),
                )
                for trial in self._finished_trials()
                if trial.number in earlier
            ]
        )

    def _absorb(self, news: TrackerNews) -> None:
        """Store what the tracker learned: the study's MLflow ids, the trials' run ids."""
        if news.parent_run_id and news.parent_run_id != self.parent_run_id:
            self.parent_run_id = news.parent_run_id
            self.study.set_user_attr(PARENT_RUN_ATTR, news.parent_run_id)
            self.study.set_user_attr(TRACKING_URI_ATTR, self.tracker.location)
        if news.experiment_id and news.experiment_id != self.experiment_id:
            self.experiment_id = news.experiment_id
            self.study.set_user_attr(EXPERIMENT_ATTR, news.experiment_id)
        for number, run_id in news.run_ids.items():
            if run_id is not None:
                self.run_ids[number] = run_id
            item = self.in_flight.get(number)
            if item is None:  # finished; once told, readers find the run by its trial tag
                item = next((i for i, _ in self.finished_untold if i.trial.number == number), None)
            if item is not None:
                item.run_id_known = True
                if run_id is not None:
                    item.trial.set_user_attr(RUN_ID_ATTR, run_id)

    def _recover_interrupted(self) -> None:
        """Close trials a previous driver left RUNNING and queue their params again."""
        stale = self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        for trial in stale:
            self._close_interrupted(trial._trial_id, trial.params)
        self.tracker.mark_interrupted([t.number for t in stale])

    def _close_interrupted(self, trial_id: int, params: dict[str, Any]) -> None:
        storage = self.study._storage
        storage.set_trial_user_attr(trial_id, INTERRUPTED_ATTR, True)
        storage.set_trial_state_values(trial_id, TrialState.FAIL)
        self.study.enqueue_trial(params, skip_if_exists=False)

    # -- the loop ----------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        """Finished trials by kind; interrupted trials do not count toward the budget."""
        counts = {"complete": 0, "failed": 0, "pruned": 0}
        for trial in self.study.get_trials(deepcopy=False):
            if trial.state == TrialState.COMPLETE:
                counts["complete"] += 1
            elif trial.state == TrialState.PRUNED:
                counts["pruned"] += 1
            elif trial.state == TrialState.FAIL and not trial.user_attrs.get(INTERRUPTED_ATTR):
                counts["failed"] += 1
        return counts

    def loop(self, executor: Executor) -> None:
        counts = self.counts()
        finished = sum(counts.values())
        budget = self.spec.budget
        deadline = self.started + budget.timeout_s if budget.timeout_s else math.inf
        for trial in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            self.front_size.add(trial.values)
        with StudyProgress(
            self.spec.name, budget.trials, finished, enabled=self.show_progress
        ) as bar:
            bar.update(
                done=finished,
                failed=counts["failed"],
                pruned=counts["pruned"],
                pareto=len(self.front_size),
            )
            while True:
                # Refill free workers before the bookkeeping of the trials that just
                # finished: a worker should not idle while Optuna and MLflow catch up.
                can_ask = time.perf_counter() < deadline
                while (
                    can_ask
                    and len(self.in_flight) < executor.capacity
                    and finished + len(self.in_flight) + len(self.finished_untold) < budget.trials
                ):
                    self._dispatch(executor)
                for item, report in self._ready_to_tell(executor.capacity):
                    key = self._finish(item, report)
                    finished += 1
                    counts[key] += 1
                    bar.update(
                        done=finished,
                        failed=counts["failed"],
                        pruned=counts["pruned"],
                        pareto=len(self.front_size),
                    )
                if not self.in_flight:
                    if not self.finished_untold:
                        break
                    self._absorb(self.tracker.poll(_POLL_S))  # the last run ids
                    continue
                self._absorb(self.tracker.poll())
                for report in executor.wait(_POLL_S / 10 if self.finished_untold else _POLL_S):
                    item = self.in_flight.pop(report.number)
                    item.finished_at = time.perf_counter()
                    self.finished_untold.append((item, report))
                if time.perf_counter() - self._front_published_at >= FRONT_EVERY_S:
                    self.publish_front(final=False)

    def _ready_to_tell(self, capacity: int) -> list[tuple[_InFlight, TrialReport]]:
        """The finished trials to tell Optuna now: those whose run id is stored (or that
        will have none), and the oldest beyond the waiting limits. MLflow lagging behind
        thus delays the telling a little, never the dispatch."""
        now = time.perf_counter()
        limit = max(_MAX_WAITING_FOR_RUN_ID, 2 * capacity)
        ready, waiting = [], []
        for entry in self.finished_untold:
            item = entry[0]
            if item.run_id_known or not self.tracker.keeps_runs:
                ready.append(entry)
            elif now - item.finished_at > _RUN_ID_WAIT_S:
                ready.append(entry)
            else:
                waiting.append(entry)
        overflow = max(0, len(waiting) - limit)
        ready += waiting[:overflow]
        self.finished_untold = waiting[overflow:]
        return ready

    def _dispatch(self, executor: Executor) -> None:
        trial = self.study.ask()
        params = sample_params(trial, self.spec.space)
        trial.set_user_attr(PARAMS_ATTR, params)
        self.tracker.start_trial(trial.number, params)
        self.in_flight[trial.number] = _InFlight(trial, params)
        executor.submit(TrialTask(trial.number, params))

    def _finish(self, item: _InFlight, report: TrialReport) -> str:
        """Tell Optuna the outcome and hand it to the tracker; return the count key."""
        error = report.error or self._missing_objectives(report.metrics)
        if error is None:
            values = [report.metrics[m] for m in self.objectives]
            item.trial.set_user_attr(METRICS_ATTR, report.metrics)
            self.study.tell(item.trial, values)
            self.front_size.add(values)
            state, key = "COMPLETE", "complete"
        else:
            report.error = error
            item.trial.set_user_attr(FAIL_REASON_ATTR, error[:2000])
            self.study.tell(item.trial, state=TrialState.FAIL)
            state, key = "FAIL", "failed"
        self.tracker.finish_trial(item.trial.number, state, report)
        self.finished_here += 1
        return key

    def _missing_objectives(self, metrics: dict[str, float]) -> str | None:
        missing = [m for m in self.objectives if m not in metrics]
        if missing:
            return (
                f"the objective returned no {', '.join(missing)} "
                f"(it returned: {', '.join(metrics) or 'nothing'})"
            )
        bad = [m for m in self.objectives if not math.isfinite(metrics[m])]
        if bad:
            return f"the objective returned a non-finite {', '.join(bad)}"
        return None

    def abandon_in_flight(self) -> None:
        """On interruption: keep finished results; close running trials as interrupted and
        queue them again."""
        while self.finished_untold:
            self._finish(*self.finished_untold.pop(0))
        if not self.in_flight:
            return
        self._absorb(self.tracker.poll())
        for item in self.in_flight.values():
            self._close_interrupted(item.trial._trial_id, item.trial.params)
        self.tracker.mark_interrupted(list(self.in_flight))
        self.in_flight.clear()

    # -- the front ---------------------------------------------------------------------
    def publish_front(self, *, final: bool) -> FrontSummary:
        """Rank every complete trial and hand the snapshot to the tracker."""
        self._front_published_at = time.perf_counter()
        trials = self.study.get_trials(deepcopy=False)
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
        step = sum(1 for t in trials if t.state.is_finished())
        # Before the normalisation is fixed the hypervolume still moves: don't chart it.
        settled = final or len(front.records) >= HV_BOUND_TRIALS
        hv = front.hypervolume if settled else None
        snapshot = FrontSnapshot(self.objectives, rows, hv, step, final)
        self.tracker.update_front(snapshot)
        return front

    def close_tracker(self, status: str) -> None:
        """Wait for the tracker to record everything; say so when that takes a while."""
        backlog = getattr(self.tracker, "backlog", 0)
        if self.show_progress and backlog > _BACKLOG_NOTICE:
            print(f"Waiting for MLflow to record the last {backlog} trials…", file=sys.stderr)
        self._absorb(self.tracker.close(status))

    def result(self, storage_url: str, front: FrontSummary) -> StudyResult:
        counts = self.counts()
        pareto = [
            r if r.mlflow_run_id else replace(r, mlflow_run_id=self.run_ids.get(r.number))
            for r in front.pareto
        ]
        return StudyResult(
            name=self.spec.name,
            storage=storage_url,
            tracking_uri=self.tracker.location,
            objectives=self.objectives,
            pareto=pareto,
            n_complete=counts["complete"],
            n_failed=counts["failed"],
            n_pruned=counts["pruned"],
            trials_run=self.finished_here,
            wall_time_s=time.perf_counter() - self.started,
            hypervolume=front.hypervolume,
            experiment_id=self.experiment_id,
            parent_run_id=self.parent_run_id,
            tracking_errors=list(getattr(self.tracker, "errors", [])),
        )
