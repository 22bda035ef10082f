"""`run_study`: a spec in, a study run (or resumed) on an executor, its result out."""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from paretotune._clock import Clock, SystemClock
from paretotune._driver import Driver
from paretotune._progress import print_front
from paretotune._timeline import mark
from paretotune.errors import LeaseLostError, SpecError, StudyNotFoundError
from paretotune.execution import (
    Executor,
    InProcessExecutor,
    UserObjective,
    study_done_with_ray,
)
from paretotune.objectives._candidates import SERVING_METRICS
from paretotune.results.records import Compute, FrontSummary, TrialRecord
from paretotune.spaces import Overrides, StudySpec, load_spec, parse_expression
from paretotune.stopping import EarlyStopping
from paretotune.study import open_storage, resolve_storage_url, resolve_tracking_uri
from paretotune.study._attrs import STOP_REASON_ATTR
from paretotune.study._constraints import parse_constraints
from paretotune.study._lock import driver_lock, refuse_if_held
from paretotune.study._open import open_study
from paretotune.study._prepare import apply_overrides, prepare
from paretotune.study._snapshot import write_snapshot
from paretotune.study._storage import journal_path, load_existing_study
from paretotune.study._unlogged import unlogged_dir
from paretotune.tracking import Tracker


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
    stop_reason: str = "budget"  # budget, timeout, goal (or interrupted: raised instead)
    goal_met_by: int | None = None  # the trial that met ``budget.stop_when``
    n_feasible: int = 0  # complete trials meeting the constraints (all, without any)
    compute: Compute = field(default_factory=Compute)
    n_interrupted: int = 0  # closed by a stop or a dead driver and run again (not counted)
    n_variants: int = 0  # compressed forks of complete trials, trials of their own


def run_study(
    spec_or_path: str | Path | dict[str, Any] | StudySpec,
    objective: UserObjective | None = None,
    *,
    storage: str | None = None,
    tracking_uri: str | None = None,
    executor: Executor | None = None,
    tracker: Tracker | None = None,
    progress: bool = True,
    clock: Clock | None = None,
    overrides: Overrides | None = None,
    **keywords: Any,
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
        clock: the driver's time (default: the system's monotonic clock); tests pass
            `paretotune.testing.SimulatedClock`.
        overrides: the spec values this run replaces (`paretotune.Overrides`: ``trials``,
            ``epochs``, ``workers``, ``timeout_s``, ``stop_when``, ``device``, ``name``,
            ``seed``, ``sampler``, ``early_stopping`` (a method), ``constraints``).
        keywords: the same overrides as keywords, ``run_study(spec, trials=5)``, on top
            of ``overrides``.

    Raises:
        StudyBusyError: another live driver runs the study.
        SpecError: the spec or an override is invalid (a keyword that is no override
            included: ``trails=5`` names ``trails``), the dataset does not fit it, or a
            study of that name exists with other objectives. Nothing is created then (a
            local Ray started meanwhile is stopped again).
    """
    mark("run_study")
    spec = apply_overrides(load_spec(spec_or_path), Overrides.of(overrides, **keywords))
    storage_url = resolve_storage_url(storage)
    refuse_if_held(storage_url, spec.name)  # a refused second driver starts no Ray
    _refuse_beyond_this_machine(spec, executor)
    if objective is not None and executor is None and spec.space.variants:
        raise SpecError(
            [
                "space.compression.variants: forks the built-in objective's trained models; "
                "a custom objective trains its own (give compression choices instead)"
            ]
        )
    if executor is None and _budget_spent(spec, storage_url):
        executor = InProcessExecutor(None, _nothing_to_run)  # a finished study: no Ray
    # The spec against its dataset before anything starts (milliseconds for a built-in
    # set; a user's file is read once, and cached for the study).
    objectives, context = prepare(spec, custom_objective=objective is not None)
    # Ray starts while the study opens; if that fails, the Ray started for it is stopped
    # again (none of its processes is left behind).
    ray_starting = executor is None and _start_ray(spec, say=progress)
    lock = contextlib.ExitStack()
    try:
        latency_on = spec.measure.latency_on.resources if spec.measure.latency_on else None
        if executor is None:  # before the study exists: a study that could never run
            _require_placeable(spec, latency_on)
            mark("ray_placeable")
        fence = lock.enter_context(driver_lock(storage_url, spec.name))  # before any trial
        study = open_study(spec, objectives, storage_url, fence)
        mark("study_open")
    except BaseException:
        lock.close()
        if ray_starting:
            from paretotune.execution import stop_ray

            stop_ray()
        raise
    with lock:  # held until the study is closed, whatever happens
        if tracker is None:
            from paretotune.tracking.mlflow import MlflowTracker

            tracker = MlflowTracker(
                resolve_tracking_uri(tracking_uri), unlogged_dir(storage_url, spec.name)
            )
        own_executor = executor is None
        driver = Driver(
            spec,
            study,
            objectives,
            tracker,
            clock or SystemClock(),
            progress,
            stopping=_early_stopping(spec, objectives),
            constraints=parse_constraints(spec.constraints),
            goal=parse_expression(spec.budget.stop_when) if spec.budget.stop_when else None,
            front_hints=_front_hints(spec, custom_objective=objective is not None),
        )
        status, reason = "FAILED", "failed"
        stopped: KeyboardInterrupt | None = None
        lost: LeaseLostError | None = None  # the study is another driver's now
        closed = 0  # running trials closed as interrupted
        try:
            if executor is None:  # actors start in the background while MLflow opens
                from paretotune.execution import RayExecutor

                executor = RayExecutor(
                    spec.resources.workers,
                    context,
                    objective,
                    cpus_per_worker=spec.resources.cpus_per_trial,
                    gpus_per_worker=spec.resources.gpus_per_trial,
                    latency_on=latency_on,
                    trial_timeout_s=spec.budget.trial_timeout_s,
                )
                mark("ray_ready")
            driver.open()
            mark("tracker_open")
            if driver.stopping is not None:
                if executor.remote_workers:
                    driver.stopping.share_with_ray()
                executor.use_epoch_gate(driver.stopping.gate())
            driver.loop(executor)
            mark("trials_done")
            status, reason = "FINISHED", driver.stop_reason()
            driver.remeasure_front(executor)
            mark("remeasured")
        except KeyboardInterrupt as stop:
            status, reason, stopped = "KILLED", "interrupted", stop
        except LeaseLostError as err:  # nothing more is written to the study: it is not ours
            lost = err
        finally:
            try:
                closed, front, lost = _wind_up(driver, executor, own_executor, reason, lost)
                if own_executor and status == "FINISHED" and lost is None:
                    study_done_with_ray()  # (the command's own Ray stops as records close)
            finally:
                if lost is not None:
                    status = "RUNNING"  # the study's MLflow record: the other driver's now
                driver.close_tracker(status)
                mark("tracker_closed")
                if lost is None:
                    write_snapshot(storage_url, study)  # readers skip the journal's replay
        if lost is not None:
            raise lost
        assert front is not None  # (published unless the lease was lost)
        try:
            result = _result(driver, storage_url, front, reason)
            if progress and stopped is not None:
                _say_interrupted(result, closed)
            if progress:
                print_front(
                    front,
                    tracking_uri=tracker.location,
                    experiment_id=result.experiment_id,
                    study=spec.name,
                )
        finally:
            mark("front_printed")
            if stopped is not None:
                raise stopped  # (what was kept is said; the caller still sees the Ctrl-C)
        return result


def _wind_up(
    driver: Driver,
    executor: Executor | None,
    own_executor: bool,
    reason: str,
    lost: LeaseLostError | None,
) -> tuple[int, FrontSummary | None, LeaseLostError | None]:
    """The end of a run, whatever ended it: the running trials closed as interrupted (or,
    the lease lost, left to the driver that took the study), the workers stopped, the
    records repaired, the stop reason written and the final front published. A lease
    lost meanwhile stops every write to the study from there on. Returns the trials
    closed, the front (None: the lease was lost) and the lost lease's error."""
    closed, front = 0, None
    if lost is None:
        try:
            closed = driver.abandon_in_flight()
        except LeaseLostError as err:
            lost = err
    if lost is not None:
        driver.leave_in_flight()
    if own_executor and executor is not None:
        executor.shutdown()
        mark("workers_stopped")
    if driver.stopping is not None:
        if not own_executor and executor is not None:
            executor.use_epoch_gate(None)  # the caller's executor, as it was given
        driver.stopping.close()
    if lost is None:
        try:
            driver.repair_records()
            driver.writer.stopped(reason, driver.goal_met_by)
            front = driver.publish_final_front()
        except LeaseLostError as err:
            lost = err
            driver.leave_in_flight()
    return closed, front, lost


@dataclass(frozen=True)
class SyncResult:
    """What `sync_study` did: the runs it recorded again, and what MLflow still lacks."""

    name: str
    tracking_uri: str
    repaired: int  # runs made or recorded again
    still_held: int  # trials whose records MLflow still did not take
    tracking_errors: list[str] = field(default_factory=list)
    unread: list[str] = field(default_factory=list)  # held pickles of an older version


def sync_study(
    name: str, *, storage: str | None = None, tracking_uri: str | None = None
) -> SyncResult:
    """Make a study's MLflow record agree with Optuna, without running a trial: record
    the trials held on disk while MLflow was unreachable (curves and models included),
    record again every run that is missing or disagrees with Optuna, close runs left
    RUNNING, and publish the front. It takes the study's driver lock, so it never runs
    beside a live driver of the study.

    Raises:
        StudyNotFoundError: no such study in the storage.
        StudyBusyError: a live driver runs the study.
    """
    from paretotune.results.client import Client
    from paretotune.study._attrs import SPEC_ATTR, study_objectives
    from paretotune.tracking.mlflow import MlflowTracker

    storage_url = resolve_storage_url(storage)
    journal = journal_path(storage_url)
    if journal is not None and not journal.exists():  # a read of nothing creates nothing
        raise StudyNotFoundError(f"study {name!r} not found: {journal} does not exist")
    client = Client(storage=storage_url, tracking_uri=tracking_uri)
    held = unlogged_dir(storage_url, name)
    with driver_lock(storage_url, name):
        # a writer's storage: a corrupt journal refused, not read up to its bad line
        study = load_existing_study(open_storage(storage_url), name, storage_url)
        uri = client.tracking_uri_of(study)
        spec = load_spec(dict(study.user_attrs[SPEC_ATTR]))
        tracker = MlflowTracker(uri, held)
        driver = Driver(
            spec,
            study,
            study_objectives(study),
            tracker,
            SystemClock(),
            show_progress=False,
            constraints=parse_constraints(spec.constraints),
        )
        driver.open()
        driver.repair_records()
        driver.publish_final_front()
        status = "KILLED" if study.user_attrs.get(STOP_REASON_ATTR) == "interrupted" else "FINISHED"
        driver.close_tracker(status)
        write_snapshot(storage_url, study)
    from paretotune.tracking.mlflow.unlogged import UnloggedTrials

    left = UnloggedTrials(held)
    return SyncResult(
        name=name,
        tracking_uri=uri,
        repaired=tracker.repaired,
        still_held=len(left),
        tracking_errors=list(driver.tracking_errors),
        unread=[str(path) for path in left.legacy()],
    )


def _require_placeable(spec: StudySpec, latency_on: dict[str, float] | None) -> None:
    """Refuse a study whose workers (or latency probe) no node could ever host."""
    from paretotune.execution import WorkerAsk, require_offered, require_placeable

    resources = spec.resources
    require_placeable(
        WorkerAsk(resources.workers, resources.cpus_per_trial, resources.gpus_per_trial)
    )
    if latency_on:
        require_offered(latency_on)


def _front_hints(spec: StudySpec, *, custom_objective: bool) -> bool:
    """Whether tasks carry the front (`measure.precise: candidates`): built-in trials
    only, and not with constraints, whose verdicts must come from precise figures (and
    whose feasible front the driver does not keep apart), nor with a goal on a serving
    figure (``stop_when: latency_ms <= 0.05`` ends the study on the figure it reads)."""
    goal = parse_expression(spec.budget.stop_when).names if spec.budget.stop_when else ()
    return (
        not custom_objective
        and spec.measure.precise == "candidates"
        and not spec.constraints
        and not SERVING_METRICS.intersection(goal)
    )


def _refuse_beyond_this_machine(spec: StudySpec, executor: Executor | None) -> None:
    """A trial asking more CPUs than this machine has, on a Ray started here: one line
    (a local Ray would pretend to have them, and each trial pin as many threads)."""
    from paretotune.execution import joined_address

    cores = os.cpu_count() or 1
    if executor is None and not joined_address(None) and spec.resources.cpus_per_trial > cores:
        raise SpecError(
            [
                f"resources.cpus_per_trial: {spec.resources.cpus_per_trial:g} is more than "
                f"this machine's {cores} cores (a cluster joined with RAY_ADDRESS may have them)"
            ]
        )


def _budget_spent(spec: StudySpec, storage_url: str) -> bool:
    """Whether the study exists and its finished trials already meet the budget (as the
    driver counts them): a rerun then runs nothing and needs no Ray. Asked read-only."""
    import optuna
    from paretotune.results.study_view import StudyView
    from paretotune.study import open_storage
    from paretotune.study._storage import find_study, storage_exists

    try:
        if not storage_exists(storage_url):
            return False
        storage = open_storage(storage_url, create=False)
        if find_study(storage, spec.name) is None:
            return False
        study = optuna.load_study(study_name=spec.name, storage=storage)
    except Exception:  # any doubt: run as usual (the driver says what is wrong)
        return False
    return len(StudyView(study).trainings) >= spec.budget.trials


def _nothing_to_run(params: dict[str, Any]) -> dict[str, float]:
    """The objective of a study whose budget is spent: never called."""
    raise AssertionError("a study whose budget is spent dispatched a trial")


def _start_ray(spec: StudySpec, *, say: bool) -> bool:
    """Begin starting (or joining) Ray with the logical CPUs the spec's workers ask for;
    with ``say``, one line, so the seconds it takes are not a blank screen."""
    from paretotune.execution import start_ray_in_background, start_words

    cpus = spec.resources.workers * spec.resources.cpus_per_trial
    starting = start_ray_in_background(min_cpus=cpus)
    if starting and say:
        words = start_words(min_cpus=cpus)
        print(f"{spec.name}: {words} and opening the study …", file=sys.stderr, flush=True)
    return starting


def _say_interrupted(result: StudyResult, closed: int) -> None:
    """What a Ctrl-C (or SIGTERM) kept: the finished trials, the running ones closed as
    interrupted (run first when the study resumes); the front so far follows."""
    kept = result.n_complete + result.n_failed + result.n_pruned
    print(
        f"{result.name}: stopped; {kept} finished trials are kept ({result.trials_run} from "
        f"this run), {closed} running trials were closed as interrupted and run first when "
        f"the study resumes; the front so far:",
        file=sys.stderr,
        flush=True,
    )


def _early_stopping(spec: StudySpec, objectives: dict[str, str]) -> EarlyStopping | None:
    settings = spec.early_stopping
    if settings.method == "none":
        return None
    return EarlyStopping(
        objectives,
        epochs=spec.budget.epochs,
        min_epochs=settings.min_epochs,
        reduction_factor=settings.reduction_factor,
    )


def _result(driver: Driver, storage_url: str, front: FrontSummary, reason: str) -> StudyResult:
    counts = driver.counts()
    pareto = [
        r if r.mlflow_run_id else replace(r, mlflow_run_id=driver.run_ids.get(r.number))
        for r in front.pareto
    ]
    return StudyResult(
        name=driver.spec.name,
        storage=storage_url,
        tracking_uri=driver.tracker.location,
        objectives=driver.objectives,
        pareto=pareto,
        n_complete=counts.complete,
        n_failed=counts.failed,
        n_pruned=counts.pruned,
        n_interrupted=counts.interrupted,
        n_variants=counts.variants,
        trials_run=driver.finished_here,
        wall_time_s=driver.elapsed_s,
        hypervolume=front.hypervolume,
        experiment_id=driver.experiment_id,
        parent_run_id=driver.parent_run_id,
        tracking_errors=list(driver.tracking_errors),
        stop_reason=reason,
        goal_met_by=driver.goal_met_by,
        n_feasible=counts.feasible,
        compute=driver.compute(),
    )
