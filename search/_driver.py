"""The driver: owns the Optuna study, asks configs, dispatches them, tells results.

It is the single writer of the Optuna storage and the only caller of the tracker, so
neither sees concurrent writers. A study is resumed by running it again: finished
trials count toward the budget, and trials a crashed driver left RUNNING are closed as
interrupted and queued again with the same params.

Time comes from an injected `Clock`, so the policies here (budget, timeout, resume,
re-queue, the run-id wait) are tested on a simulated clock (`paretotune.testing`).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState
from paretotune._clock import Clock
from paretotune._front import Front
from paretotune._interrupts import interrupts_deferred
from paretotune._progress import StudyProgress
from paretotune._timeline import mark
from paretotune.execution import Executor, TrialReport, TrialTask
from paretotune.objectives._candidates import FrontHint
from paretotune.objectives._metric_names import out_of_range
from paretotune.results.records import Compute, FrontSummary, compute_of, trial_compute
from paretotune.results.study_view import StudyView
from paretotune.spaces import Expression, StudySpec, sample_params
from paretotune.stopping import EarlyStopping
from paretotune.study._attrs import (
    ATTEMPT_ATTR,
    CURVE_ATTR_PREFIX,
    EXPERIMENT_ATTR,
    FAIL_REASON_ATTR,
    FORKED_FROM_ATTR,
    PARAMS_ATTR,
    PARENT_RUN_ATTR,
    PLACEMENT_ATTR,
    RETRY_OF_ATTR,
    STARTED_AT_ATTR,
    STOPPED_AT_ATTR,
    STUDY_UID_ATTR,
    TRIAL_SECONDS_ATTR,
    VARIANT_ATTR,
    is_variant,
    trial_metrics,
)
from paretotune.study._constraints import is_feasible, trial_namespace, violations
from paretotune.study._open import close_interrupted, queued_reruns, running_trials
from paretotune.study._writer import Fork, StudyWriter, TrialEnd, constraint_values
from paretotune.tracking import FinishedTrial, StudyRef, Tracker, TrackerNews

POLL_S = 0.2
FRONT_EVERY_S = 10.0  # how often the ranked front is republished while the study runs
# A trial that joins the front republishes it sooner (its runs' pareto tags then agree with
# the CLI even if the driver dies next), but not more often than this.
FRONT_CHANGE_S = 1.0
BACKLOG_NOTICE = 20  # trials MLflow may still have to record before closing says so
# A finished trial is told to Optuna once its MLflow run id is stored with it, but never
# held longer than this, nor while more than this many (or 2 per worker) finished
# trials wait.
RUN_ID_WAIT_S = 30.0
LATE_RUN_IDS_BATCH = 500  # run ids answered after their trials were told, per write
MAX_WAITING_FOR_RUN_ID = 8


@dataclass
class _InFlight:
    trial: optuna.Trial
    params: dict[str, Any]
    run_id_known: bool = False  # the tracker answered (with a run id or with None)
    finished_at: float = math.inf


@dataclass
class Counts:
    """Finished trials by kind; interrupted trials and compression variants do not count
    toward the budget (it counts trainings)."""

    complete: int = 0
    failed: int = 0
    pruned: int = 0
    feasible: int = 0  # complete trials meeting the spec's constraints
    retried: int = 0  # attempts lost with their worker and run again (not counted)
    interrupted: int = 0  # closed by a stop or a dead driver, queued again (not counted)
    epochs: int = 0  # trained by the trials counted here
    epochs_saved: int = 0  # not trained because early stopping ended a trial
    variants: int = 0  # compressed forks of complete trials (trials, not trainings)

    @property
    def finished(self) -> int:
        return self.complete + self.failed + self.pruned

    @classmethod
    def of(cls, view: StudyView, constraints: list[Expression]) -> Counts:
        """The counts of a study read once (epochs are the caller's)."""
        counts = cls()
        for trial in view.trials:
            state = view.state_of(trial)
            if state == "COMPLETE":
                if is_variant(trial):
                    counts.variants += 1
                else:
                    counts.complete += 1
                counts.feasible += is_feasible(constraints, trial_namespace(trial))
            elif state == "PRUNED":
                counts.pruned += 1
            elif state == "FAIL" and trial.number in view.retried:
                counts.retried += 1
            elif state == "INTERRUPTED":
                counts.interrupted += 1
            elif state == "FAIL":
                counts.failed += 1
        return counts


@dataclass
class Driver:
    """The ask → dispatch → tell loop of one `run_study` call."""

    spec: StudySpec
    study: optuna.Study
    objectives: dict[str, str]
    tracker: Tracker
    clock: Clock
    show_progress: bool = True
    stopping: EarlyStopping | None = None
    constraints: list[Expression] = field(default_factory=list)
    goal: Expression | None = None  # budget.stop_when
    # send each task the front at dispatch: built-in trials measure precisely only the
    # models that could join it (`measure.precise: candidates`)
    front_hints: bool = False
    in_flight: dict[int, _InFlight] = field(default_factory=dict)  # running on a worker
    run_ids: dict[int, str] = field(default_factory=dict)  # run ids the tracker reported
    # run ids of trials already told, not yet written (`StudyWriter.late_run_ids`)
    _late_run_ids: dict[int, str] = field(default_factory=dict)
    finished_untold: list[tuple[_InFlight, TrialReport]] = field(default_factory=list)
    finished_here: int = 0
    parent_run_id: str | None = None
    experiment_id: str | None = None
    tracking_errors: list[str] = field(default_factory=list)
    goal_met_by: int | None = None  # the trial that met the goal
    lease_lost: bool = False  # (a Redis lease's) nothing more is written to the study
    timed_out: bool = False
    requeued: int = 0  # trials a dead driver or a stop left unfinished, run again first
    _finished_steps: int = 0  # the study's finished trials (retried ones too)

    def __post_init__(self) -> None:
        self.started = self.clock.now()
        self.front = Front(self.objectives)
        self.writer = StudyWriter(self.study)
        self.tally = Counts()  # kept from `open` on, one trial at a time
        self._view: StudyView | None = None  # see `view`
        self._lagging_since: float | None = None  # see `_tracking_lags`
        self._compute = Compute()
        self._dispatched = False  # this run sent no trial yet (`first_dispatch` mark)
        self._forked: set[tuple[int, str]] = set()  # (trial, compression) of its variants
        self._variant_choices = CategoricalDistribution(["none", *self.spec.space.variants])

    # -- set-up ------------------------------------------------------------------------
    def open(self) -> None:
        self.parent_run_id = self.study.user_attrs.get(PARENT_RUN_ATTR)
        self.experiment_id = self.study.user_attrs.get(EXPERIMENT_ATTR)
        self.tracker.open_study(
            StudyRef(
                self.spec.name,
                self.spec.model_dump(mode="json"),
                self.parent_run_id,
                self.study.user_attrs.get(STUDY_UID_ATTR),
                objectives=dict(self.objectives),
            )
        )
        stale = running_trials(self.study)
        close_interrupted(self.study, stale)
        self.requeued = queued_reruns(self.study)  # a stop's or a dead driver's
        self.tracker.mark_interrupted(list(stale))
        if self.stopping is not None:
            self.stopping.restore(self.study)
        self._read(self.view())

    def view(self) -> StudyView:
        """The study read once since the driver last changed a trial (`StudyView`)."""
        if self._view is None:
            self._view = StudyView(self.study)
        return self._view

    def _read(self, view: StudyView) -> None:
        """What earlier runs left, read once: the counts, the front, the compute spent and
        the finished trials (the hypervolume chart's step); kept incrementally after."""
        self.tally = Counts.of(view, self.constraints)
        self._compute = compute_of(view.trials, self.spec.budget.epochs)
        self.tally.epochs, self.tally.epochs_saved = (
            self._compute.epochs,
            self._compute.epochs_saved,
        )
        self._finished_steps = sum(1 for t in view.trials if t.state.is_finished())
        self._forked = {
            (int(t.user_attrs[FORKED_FROM_ATTR]), str(t.user_attrs[VARIANT_ATTR]))
            for t in view.trials
            if is_variant(t)
        }
        self.front.load(view)

    def repair_records(self) -> None:
        """Have the tracker make its records agree with Optuna: every finished trial whose
        record is missing, open or different (a killed driver's unsent jobs, an outage's
        held trials). Done at the end, when this run's own records are all sent, and a
        logging process a killed driver left behind has long finished what it was sent."""
        self.tracker.repair([finished_trial(t) for t in self.view().finished])

    def _absorb(self, news: TrackerNews) -> None:
        """Store what the tracker learned: the study's MLflow ids, the trials' run ids
        (only what it said, after a lost lease: the study is not this driver's to write)."""
        self.tracking_errors += news.errors
        if self.lease_lost:
            return
        if news.parent_run_id and news.parent_run_id != self.parent_run_id:
            self.parent_run_id = news.parent_run_id
            self.writer.tracked_at(news.parent_run_id, self.tracker.location)
        if news.experiment_id and news.experiment_id != self.experiment_id:
            self.experiment_id = news.experiment_id
            self.writer.experiment(news.experiment_id)
        for number, run_id in news.run_ids.items():
            if run_id is not None:
                self.run_ids[number] = run_id
            item = self.in_flight.get(number)
            if item is None:
                item = next((i for i, _ in self.finished_untold if i.trial.number == number), None)
            if item is None and run_id is not None:  # told already: kept on the study
                self._late_run_ids[number] = run_id
                if len(self._late_run_ids) >= LATE_RUN_IDS_BATCH:
                    self._write_late_run_ids()
            elif item is not None:
                item.run_id_known = True
                if run_id is not None:
                    self.writer.run_id(item.trial, run_id)

    # -- the loop ----------------------------------------------------------------------
    def counts(self) -> Counts:
        """The study's trials by kind, as of now."""
        return self.tally

    def loop(self, executor: Executor) -> None:
        counts = self.tally
        budget = self.spec.budget
        deadline = self.started + budget.timeout_s if budget.timeout_s else math.inf
        with StudyProgress(
            self.spec.name,
            budget.trials,
            counts.finished,
            self.objectives,
            enabled=self.show_progress,
        ) as bar:
            if counts.finished or self.requeued:
                bar.say(self._resuming_line(counts))
            self._show(bar, counts)
            while True:
                # Refill free workers before the bookkeeping of the trials that just
                # finished: a worker should not idle while Optuna and MLflow catch up.
                self.timed_out = self.clock.now() >= deadline
                can_ask = not self.timed_out and self.goal_met_by is None
                while (
                    can_ask
                    and not self._tracking_lags(executor.capacity)
                    and len(self.in_flight) < executor.capacity
                    and counts.finished + len(self.in_flight) + len(self.finished_untold)
                    < budget.trials
                ):
                    self._dispatch(executor)
                for item, report in self._ready_to_tell(executor.capacity):
                    self._finish(item, report)
                    self._show(bar, counts)
                if not self.in_flight:
                    if not self.finished_untold:
                        wanting = can_ask and counts.finished < budget.trials
                        if wanting and self._tracking_lags(executor.capacity):
                            self._absorb(self.tracker.poll(POLL_S))  # MLflow catches up
                            continue
                        if wanting and executor.capacity > 0:
                            continue  # a retry was queued as the last trial ended
                        if wanting and executor.placing:
                            executor.wait(POLL_S)  # no worker placed yet: wait for one
                            continue
                        break
                    self._absorb(self.tracker.poll(POLL_S))  # the last run ids
                    continue
                self._absorb(self.tracker.poll())
                for report in executor.wait(POLL_S / 10 if self.finished_untold else POLL_S):
                    item = self.in_flight.pop(report.number)
                    item.finished_at = self.clock.now()
                    self.finished_untold.append((item, report))
                self._keep_rung_records()
                since = self.clock.now() - self.front.published_at
                due = since >= FRONT_EVERY_S or (self.front.changed and since >= FRONT_CHANGE_S)
                if due and self.front.publish_throttle.due():  # large fronts: by its cost
                    self.publish_front()

    def _tracking_lags(self, capacity: int) -> bool:
        """Whether the tracker is as far behind as finished trials may wait for their run
        ids (`_ready_to_tell`'s limit): then nothing more is dispatched until it catches
        up, so every trial is told with its run id and the tracker's backlog stays
        bounded. Only trials faster than MLflow records them meet this (no-op trials); a
        tracker stuck longer than ``RUN_ID_WAIT_S`` no longer holds the study back."""
        if not self.tracker.keeps_runs:
            return False
        lag = self.tracker.backlog - len(self.in_flight)
        if lag < max(MAX_WAITING_FOR_RUN_ID, 2 * capacity):
            self._lagging_since = None
            return False
        now = self.clock.now()
        if self._lagging_since is None:
            self._lagging_since = now
        return now - self._lagging_since < RUN_ID_WAIT_S

    def _resuming_line(self, counts: Counts) -> str:
        left = max(0, self.spec.budget.trials - counts.finished)
        line = f"resuming {self.spec.name}: {counts.finished} finished, {left} to go"
        rerun = min(self.requeued, left)  # queued trials count toward the budget
        if rerun:
            line += f" ({rerun} interrupted trials run again first)"
        return line

    def _show(self, bar: StudyProgress, counts: Counts) -> None:
        bar.update(
            done=counts.finished,
            failed=counts.failed,
            retried=counts.retried,
            interrupted=counts.interrupted,
            best=self.front.running.best(),
            hypervolume=self.front.hypervolume(),
            pruned=counts.pruned,
            pareto=len(self.front),
            feasible=counts.feasible if self.constraints else None,
            epochs=(counts.epochs, counts.epochs_saved) if self.stopping else None,
            variants=counts.variants,
        )

    def _ready_to_tell(self, capacity: int) -> list[tuple[_InFlight, TrialReport]]:
        """The finished trials to tell Optuna now: those whose run id is stored (or that
        will have none), and the oldest beyond the waiting limits. MLflow lagging behind
        thus delays the telling a little, never the dispatch."""
        now = self.clock.now()
        limit = max(MAX_WAITING_FOR_RUN_ID, 2 * capacity)
        keeps_runs = self.tracker.keeps_runs
        ready, waiting = [], []
        for entry in self.finished_untold:
            item = entry[0]
            if item.run_id_known or not keeps_runs or now - item.finished_at > RUN_ID_WAIT_S:
                ready.append(entry)
            else:
                waiting.append(entry)
        overflow = max(0, len(waiting) - limit)
        ready += waiting[:overflow]
        self.finished_untold = waiting[overflow:]
        return ready

    def _dispatch(self, executor: Executor) -> None:
        self._view = None
        trial = self.study.ask()
        params = sample_params(trial, self.spec.space)
        self.writer.asked(trial, params)
        retry = {
            k: str(trial.user_attrs[k])
            for k in (ATTEMPT_ATTR, RETRY_OF_ATTR)
            if k in trial.user_attrs
        }
        self.tracker.start_trial(trial.number, params, retry)
        self.in_flight[trial.number] = _InFlight(trial, params)
        executor.submit(TrialTask(trial.number, params, self._front_hint()))
        if not self._dispatched:
            self._dispatched = True
            mark("first_dispatch")

    def _front_hint(self) -> FrontHint | None:
        """The front as it stands (a copy of its values: what grows with the front)."""
        if not self.front_hints:
            return None
        return FrontHint(self.objectives, self.front.running.values().tolist())

    def _finish(self, item: _InFlight, report: TrialReport) -> None:
        """Tell Optuna the outcome, count it and hand it to the tracker; a Ctrl-C or
        SIGTERM meanwhile takes effect once this is done (`interrupts_deferred`)."""
        with interrupts_deferred():
            self._finish_now(item, report)

    def _finish_now(self, item: _InFlight, report: TrialReport) -> None:
        self._view = None
        for key in self._tell(item, report):
            setattr(self.tally, key, getattr(self.tally, key) + 1)
        self.tally.epochs = self._compute.epochs
        self.tally.epochs_saved = self._compute.epochs_saved

    def _tell(self, item: _InFlight, report: TrialReport) -> list[str]:
        """Tell Optuna the outcome and hand it to the tracker; return the `Counts` fields
        it adds to."""
        trial = item.trial
        if (
            report.transient
            and trial.user_attrs.get(ATTEMPT_ATTR, 1) <= self.spec.resources.retries
        ):
            self._retry(trial, report)
            return ["retried"]
        self._keep_rung_records(also=trial)
        error = report.error or (
            None if report.stopped_at is not None else self._missing_objectives(report.metrics)
        )
        self._report_curve(trial, report.history)
        end = TrialEnd(
            epochs=self._epochs_trained(report),
            trial_seconds=report.worker_time_s,
            started_at=report.started_at,
            placement=report.placement,
            metrics=report.metrics if error is None else None,
            curves=_curves(report.history),
            stopped_at=report.stopped_at if error is None else None,
            fail_reason=error,
            has_model=report.model_bytes is not None,
        )
        written = self.writer.trial_ended(trial, end)
        self._compute += trial_compute(written, self.spec.budget.epochs)
        namespace = {**item.params, **report.metrics}  # what conditions name
        if error is None and self.constraints:  # the samplers steer by these (a complete
            found = constraint_values(violations(self.constraints, namespace))  # trial's or
            for key, value in found.items():  # a stopped one's, as Optuna's own did)
                trial.set_constraint(key, value)
        if error is None and report.stopped_at is not None:  # stopped early: never a value
            self.study.tell(trial, state=TrialState.PRUNED)
            state, keys = "PRUNED", ["pruned"]
        elif error is None:
            values = [report.metrics[m] for m in self.objectives]
            self.study.tell(trial, values)
            joined = self.front.add(trial.number, values, item.params, report.model_bytes)
            report.pareto_rank, report.told = (0 if joined else None), True
            state, keys = "COMPLETE", ["complete"]
            if is_feasible(self.constraints, namespace):
                keys.append("feasible")
                self._check_goal(trial.number, namespace)
        else:
            report.error = error
            self.study.tell(trial, state=TrialState.FAIL)
            state, keys = "FAIL", ["failed"]
        self.tracker.finish_trial(trial.number, state, report)
        self.finished_here += 1
        self._chart_front()
        if state == "COMPLETE":
            self._add_variants(trial, item.params, report)
        return keys

    def _add_variants(
        self, base: optuna.Trial, params: dict[str, Any], report: TrialReport
    ) -> None:
        """Each compressed fork of a complete trial's model becomes a trial of its own
        (`StudyWriter.forked`): on the front, counted, and recorded in MLflow under the
        trial's run. Once per trial and compression: a resumed study adds none twice."""
        for compression, fork_report in report.variants:
            if (base.number, compression) in self._forked:
                continue
            metrics = fork_report.metrics
            if self._missing_objectives(metrics) is not None:
                continue
            fork_params = {**params, "compression": compression}
            namespace = {**fork_params, **metrics}
            values = [metrics[m] for m in self.objectives]
            violated = violations(self.constraints, namespace) if self.constraints else None
            fork = Fork(compression, fork_params, self._variant_choices, values, violated)
            end = TrialEnd(
                epochs=0,
                trial_seconds=fork_report.worker_time_s,
                started_at=fork_report.started_at,
                placement=fork_report.placement,
                metrics=metrics,
                has_model=fork_report.model_bytes is not None,
            )
            number, written = self.writer.forked(base, fork, end)
            self._forked.add((base.number, compression))
            self._compute += trial_compute(written, self.spec.budget.epochs)
            joined = self.front.add(number, values, fork_params, fork_report.model_bytes)
            fork_report.number = number
            fork_report.pareto_rank, fork_report.told = (0 if joined else None), True
            self.tally.variants += 1
            if is_feasible(self.constraints, namespace):
                self.tally.feasible += 1
                self._check_goal(number, namespace)
            labels = {"forked_from": str(base.number), "variant": compression}
            self.tracker.start_trial(number, fork_params, labels)
            self.tracker.finish_trial(number, "COMPLETE", fork_report)
            self._chart_front()

    def _retry(self, trial: optuna.Trial, report: TrialReport) -> None:
        """A trial whose worker was lost (``resources.retries`` not spent): closed as
        retried (it never counts toward the budget) and queued again with its params, as
        the next attempt. The steps are ordered like `close_interrupted`'s, so a crash
        between them neither loses the trial nor counts it twice."""
        attempt = int(trial.user_attrs.get(ATTEMPT_ATTR, 1))
        first = int(trial.user_attrs.get(RETRY_OF_ATTR, trial.number))
        self.writer.retried(trial.number)
        self.writer.trial_ended(trial, TrialEnd(0, 0.0, fail_reason=report.error or ""))
        self.study.tell(trial, state=TrialState.FAIL)
        self.study.enqueue_trial(
            dict(trial.params),
            user_attrs={ATTEMPT_ATTR: attempt + 1, RETRY_OF_ATTR: first},
            skip_if_exists=False,
        )
        self.tracker.finish_trial(trial.number, "RETRIED", report)
        self._chart_front()

    def _chart_front(self) -> None:
        """The front's hypervolume on the study's record, one point per finished trial
        (its step counts them as `FrontSnapshot.step` does), once it is settled."""
        self._finished_steps += 1
        hypervolume = self.front.hypervolume()
        if hypervolume is not None:
            self.tracker.chart_front(self._finished_steps, {"hypervolume": hypervolume})

    def remeasure_front(self, executor: Executor) -> None:
        """The front's latencies measured again, with no trial running (see `Front`)."""
        self.front.remeasure(executor, self.writer, self.tracker)

    def _epochs_trained(self, report: TrialReport) -> int:
        """Its history's length; a trial that reports none (a custom objective) counts
        the study's epochs."""
        return len(report.history) or self.spec.budget.epochs

    def _check_goal(self, number: int, namespace: dict[str, Any]) -> None:
        """The first feasible trial meeting ``budget.stop_when`` ends the study: nothing is
        asked after it (running trials finish)."""
        if self.goal is not None and self.goal_met_by is None and self.goal.holds(namespace):
            self.goal_met_by = number

    def _keep_rung_records(self, also: optuna.Trial | None = None) -> None:
        """Keep the new rung records with their trials in the Optuna storage (a resumed
        study restores them); ``also``: a trial being told, no longer in flight."""
        if self.stopping is None:
            return
        owners = {i.trial.number: i.trial for i in self.in_flight.values()}
        owners |= {i.trial.number: i.trial for i, _ in self.finished_untold}
        if also is not None:
            owners[also.number] = also
        for record in self.stopping.take_unsaved():
            owner = owners.get(record.number)
            if owner is not None:
                self.writer.attrs(owner, [EarlyStopping.attr(record)])

    def stop_reason(self) -> str:
        """Why `loop` ended: the goal, the timeout, or the budget."""
        if self.goal_met_by is not None:
            return "goal"
        if self.timed_out and self.tally.finished < self.spec.budget.trials:
            return "timeout"
        return "budget"

    def _report_curve(self, trial: optuna.Trial, history: list[dict[str, float]]) -> None:
        """A single-objective study's validation curve as Optuna intermediate values
        (Optuna refuses those when there are several objectives, optuna#3450; every
        study keeps each metric's curve as ``curve.<metric>``, see `_curves`)."""
        if len(self.objectives) != 1:
            return
        key = "val_" + next(iter(self.objectives))
        for step, entry in enumerate(history):
            if key in entry and math.isfinite(entry[key]):
                trial.report(entry[key], step)

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
        absurd = [why for m in self.objectives if (why := out_of_range(m, metrics[m]))]
        if absurd:
            return f"the objective returned {', '.join(absurd)}"
        return None

    def abandon_in_flight(self) -> int:
        """On interruption: keep finished results; close running trials as interrupted and
        queue them again, the one asked of Optuna but not yet dispatched when the signal
        came included (the driver holds the study's lock: every RUNNING trial is its own).
        Returns how many were closed."""
        while self.finished_untold:
            self._finish(*self.finished_untold.pop(0))
        params = {n: i.trial.params for n, i in self.in_flight.items()}
        params |= {n: p for n, p in running_trials(self.study).items() if n not in params}
        closed = len(params)
        if not closed:
            return 0
        self.tally.interrupted += closed
        self._view = None
        self._absorb(self.tracker.poll())
        close_interrupted(self.study, params)
        self.tracker.mark_interrupted(list(self.in_flight))
        self.in_flight.clear()
        return closed

    def leave_in_flight(self) -> None:
        """On a lost lease: the running trials are the new driver's to close and run again
        (it found them RUNNING); only their MLflow runs, this driver's, are ended, and
        nothing is written to the study from now on."""
        self.lease_lost = True
        self._absorb(self.tracker.poll())
        self.tracker.mark_interrupted(list(self.in_flight))
        self.in_flight.clear()
        self.finished_untold.clear()

    # -- the front ---------------------------------------------------------------------
    def _study_metrics(self) -> dict[str, float]:
        metrics = self._compute.as_metrics()
        if self.constraints:
            metrics["feasible_trials"] = float(self.tally.feasible)
        return metrics

    def publish_front(self) -> None:
        """Hand the tracker a snapshot of the front kept here (no read of the study)."""
        snapshot = self.front.snapshot(
            step=self._finished_steps,
            study_metrics=self._study_metrics(),
            now=self.clock.now(),
            run_ids=self.run_ids.get,
        )
        self.tracker.update_front(snapshot)

    def publish_final_front(self) -> FrontSummary:
        """Rank every complete trial (the study read once, at the end), hand the tracker
        that snapshot and return it."""
        view = self.view()
        steps = sum(1 for t in view.trials if t.state.is_finished())
        front, snapshot = self.front.final_snapshot(
            view, step=steps, study_metrics=self._study_metrics(), now=self.clock.now()
        )
        self.tracker.update_front(snapshot)
        return front

    def compute(self) -> Compute:
        """What the study's trials spent, as of now."""
        return self._compute

    def close_tracker(self, status: str) -> None:
        """Wait for the tracker to record everything; say so when that takes a while."""
        backlog = self.tracker.backlog
        if self.show_progress and backlog > BACKLOG_NOTICE:
            print(f"Waiting for MLflow to record the last {backlog} trials…", file=sys.stderr)
        self._absorb(self.tracker.close(status))
        self._write_late_run_ids()

    def _write_late_run_ids(self) -> None:
        if self.lease_lost:
            return
        self.writer.late_run_ids(self._late_run_ids)
        self._late_run_ids = {}

    @property
    def elapsed_s(self) -> float:
        return self.clock.now() - self.started


def finished_trial(trial: FrozenTrial) -> FinishedTrial:
    """What Optuna holds of a finished trial, for a tracker to record it again."""
    curves = {
        key.removeprefix(CURVE_ATTR_PREFIX): value
        for key, value in trial.user_attrs.items()
        if key.startswith(CURVE_ATTR_PREFIX) and isinstance(value, list)
    }
    epochs = max((len(curve) for curve in curves.values()), default=0)
    history = [
        {name: curve[epoch] for name, curve in curves.items() if _is_number(curve, epoch)}
        for epoch in range(epochs)
    ]
    return FinishedTrial(
        number=trial.number,
        state=trial.state.name,
        params=dict(trial.user_attrs.get(PARAMS_ATTR) or trial.params),
        metrics=trial_metrics(trial),
        error=trial.user_attrs.get(FAIL_REASON_ATTR),
        history=history,
        stopped_at=trial.user_attrs.get(STOPPED_AT_ATTR),
        placement=dict(trial.user_attrs.get(PLACEMENT_ATTR) or {}),
        started_at=float(trial.user_attrs.get(STARTED_AT_ATTR, 0.0)),
        worker_time_s=float(trial.user_attrs.get(TRIAL_SECONDS_ATTR, 0.0)),
    )


def _curves(history: list[dict[str, float]]) -> dict[str, list[Any]]:
    """Each metric's per-epoch values, as the trial attributes ``curve.<metric>``."""
    names = dict.fromkeys(k for entry in history for k in entry if k != "epoch")
    return {CURVE_ATTR_PREFIX + name: [entry.get(name) for entry in history] for name in names}


def _is_number(curve: list[Any], epoch: int) -> bool:
    return epoch < len(curve) and isinstance(curve[epoch], int | float)
