"""The driver's policies on a simulated clock: budget, timeout, failures, resume, re-queue
after an interruption, and the wait for run ids. No Ray, no MLflow; milliseconds each."""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from paretotune import SpecError, _timeline
from paretotune._driver import RUN_ID_WAIT_S
from paretotune.execution import TrialTask
from paretotune.results.study_view import StudyView
from paretotune.study import open_storage
from paretotune.study._attrs import (
    FAIL_REASON_ATTR,
    RUN_ID_ATTR,
    interrupted_numbers,
    retried_numbers,
    study_objectives,
)
from paretotune.testing import (
    Outcome,
    RecordingTracker,
    ScriptedExecutor,
    SimulatedClock,
    simulate_study,
)

SPEC = {
    "name": "policies",
    "objectives": {"accuracy": "maximize", "train_time_s": "minimize"},
    "space": {
        "architecture": "mlp",
        "mlp": {"depth": [1, 2, 3], "width": [16, 32, 64]},
        "optimizer": ["adam", "sgd"],
        "compression": ["none"],
    },
    "budget": {"trials": 6},
    "resources": {"workers": 2},
    "sampler": {"name": "random"},
}


def _seconds(task: TrialTask) -> Outcome:
    """A trial of 10 simulated seconds whose metrics follow its params."""
    width = task.params["mlp.width"]
    return Outcome(seconds=10.0, metrics={"accuracy": width / 64, "train_time_s": width / 8})


def _run(tmp_path: Path, script=_seconds, *, tracker=None, capacity=2, **kw):
    clock = tracker.clock if tracker else SimulatedClock()
    executor = ScriptedExecutor(script, clock, capacity=capacity, **kw.pop("executor", {}))
    run = simulate_study(
        SPEC,
        script,
        storage=str(tmp_path / "study.journal"),
        executor=executor,
        tracker=tracker,
        **kw,
    )
    return run.result, run.executor, run.tracker, run.clock


def _study(tmp_path: Path, name: str = "policies") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=open_storage(str(tmp_path / "study.journal")))


def test_the_budget_is_met_with_workers_kept_busy(tmp_path: Path):
    result, executor, tracker, clock = _run(tmp_path)
    assert result.n_complete == 6 and result.trials_run == 6
    assert len(executor.submitted) == 6 and executor.shut_down is False  # not ours to stop
    assert clock.now() == pytest.approx(30.0)  # 6 trials of 10 s on 2 workers
    assert result.wall_time_s == pytest.approx(30.0)
    assert sorted(tracker.finished) == list(range(6))
    assert set(tracker.finished.values()) == {"COMPLETE"}
    assert tracker.calls[0] == "open_study" and tracker.calls[-1] == "close"
    assert tracker.closed_with == "FINISHED" and tracker.fronts[-1].final


def test_objectives_are_optunas_metric_names(tmp_path: Path):
    _run(tmp_path)
    study = _study(tmp_path)
    assert study.metric_names == ["accuracy", "train_time_s"]
    assert study_objectives(study) == SPEC["objectives"]


def test_a_timeout_stops_asking_and_lets_running_trials_finish(tmp_path: Path):
    result, executor, _, clock = _run(tmp_path, capacity=1, timeout_s=25)
    # asked at 0, 10 and 20 s; at 30 s the deadline has passed
    assert len(executor.submitted) == 3 and result.n_complete == 3
    assert clock.now() == pytest.approx(30.0)


def test_failures_are_recorded_with_their_reason_and_count_toward_the_budget(tmp_path: Path):
    def script(task: TrialTask) -> Outcome:
        if task.params["optimizer"] == "sgd":
            raise RuntimeError("sgd is cursed")
        if task.params["mlp.depth"] == 3:
            return Outcome(metrics={"accuracy": 0.5})  # train_time_s missing
        return _seconds(task)

    result, _, tracker, _ = _run(tmp_path, script)
    study = _study(tmp_path)
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert result.n_failed == len(failed) > 0
    assert result.n_complete + result.n_failed == 6
    for trial in failed:
        reason = trial.user_attrs[FAIL_REASON_ATTR]
        assert "sgd is cursed" in reason or "returned no train_time_s" in reason
        assert tracker.finished[trial.number] == "FAIL"


def test_an_absurd_objective_value_fails_its_trial_and_never_reaches_the_front(tmp_path: Path):
    """A finite but impossible value (a training time of -1e308, an accuracy of 7) is no
    measurement: the trial fails with the reason, and the front holds only real ones."""

    def script(task: TrialTask) -> Outcome:
        outcome = _seconds(task)
        if task.params["mlp.width"] == 16:
            outcome.metrics["train_time_s"] = -1e308
        elif task.params["mlp.width"] == 32:
            outcome.metrics["accuracy"] = 7.0
        return outcome

    result, _, _, _ = _run(tmp_path, script)
    study = _study(tmp_path)
    reasons = {
        t.params["mlp.width"]: t.user_attrs[FAIL_REASON_ATTR]
        for t in study.trials
        if t.state == TrialState.FAIL
    }
    assert reasons, "the random sampler drew the absurd widths"
    assert all(width in (16, 32) for width in reasons)
    for width, reason in reasons.items():
        said = "a negative train_time_s (-1e+308)" if width == 16 else "accuracy 7, outside [0, 1]"
        assert reason == f"the objective returned {said}"
    assert all(r.values["train_time_s"] >= 0 for r in result.pareto)


def test_a_lost_worker_s_trial_is_retried_even_as_the_last_one_and_retries_run_out(
    tmp_path: Path,
):
    """The last trial to end was lost with its worker: its retry still runs (with its
    params), and does not count toward the budget; a config lost on every attempt fails
    once ``resources.retries`` is spent."""
    attempts: dict[tuple, int] = {}
    doomed: list[tuple] = []

    def script(task: TrialTask) -> Outcome:
        key = tuple(sorted(task.params.items()))
        attempts[key] = attempts.get(key, 0) + 1
        if task.number == 0:
            doomed.append(key)
        if key in doomed:  # lost every time this config runs
            return Outcome(error="worker died: node lost", lost=True)
        if task.number == 5 and attempts[key] == 1:  # the slowest, lost the first time
            return Outcome(seconds=30.0, error="worker died: node lost", lost=True)
        return _seconds(task)

    spec = SPEC | {"resources": {"workers": 2, "retries": 1}}
    run = simulate_study(spec, script, storage=str(tmp_path / "study.journal"), capacity=2)
    result, tracker, study = run.result, run.tracker, _study(tmp_path)
    retried = retried_numbers(study)
    assert 5 in retried and 0 in retried
    trials = {t.number: t for t in study.trials}
    again = {t.user_attrs["retry_of"]: t for t in study.trials if "retry_of" in t.user_attrs}
    assert again[5].params == trials[5].params and again[5].state == TrialState.COMPLETE
    assert again[0].state == TrialState.FAIL and again[0].number not in retried
    assert result.n_complete + result.n_failed == 6 and result.n_failed == 1
    assert tracker.finished[5] == "RETRIED" and tracker.labels[again[5].number] == {
        "attempt": "2",
        "retry_of": "5",
    }


def test_a_resume_counts_finished_trials_and_repairs_their_records(tmp_path: Path):
    _run(tmp_path, trials=3)
    result, executor, tracker, _ = _run(tmp_path, trials=5)
    assert result.trials_run == 2 and result.n_complete == 5
    assert [t.number for t in executor.submitted] == [3, 4]
    # every finished trial goes to the tracker's repair: it records those its records lack
    assert sorted(t.number for t in tracker.repaired) == [0, 1, 2, 3, 4]
    again, executor, _, _ = _run(tmp_path, trials=5)
    assert again.trials_run == 0 and executor.submitted == []


def test_trials_a_dead_driver_left_running_are_closed_and_run_again(tmp_path: Path):
    _run(tmp_path, trials=2)
    study = _study(tmp_path)
    orphan = study.ask()  # a driver killed while this trial ran
    orphan.suggest_categorical("architecture", ["mlp"])
    orphan_params = dict(orphan.params)
    result, executor, tracker, _ = _run(tmp_path, trials=4)
    study = _study(tmp_path)
    assert study.trials[orphan.number].state == TrialState.FAIL
    assert interrupted_numbers(study) == {orphan.number}
    assert tracker.interrupted == [orphan.number]
    assert result.n_complete == 4 and result.n_failed == 0  # not counted toward the budget
    retried = executor.submitted[0]
    assert retried.number > orphan.number
    assert {k: retried.params[k] for k in orphan_params} == orphan_params


def test_an_interruption_keeps_finished_trials_and_queues_running_ones(tmp_path: Path):
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, executor={"interrupt_after": 2})
    study = _study(tmp_path)
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    interrupted = interrupted_numbers(study)
    assert len(complete) == 2 and len(interrupted) == 2
    assert all(study.trials[n].state == TrialState.FAIL for n in interrupted)
    requeued = [t for t in study.trials if t.state == TrialState.WAITING]
    assert len(requeued) == 2
    result, _, _, _ = _run(tmp_path)
    assert result.n_complete == 6 and result.n_failed == 0
    rerun = [t.params for t in _study(tmp_path).trials if t.state == TrialState.COMPLETE]
    assert all(study.trials[n].params in rerun for n in interrupted)


def test_an_interruption_closes_the_tracker_as_killed(tmp_path: Path):
    clock = SimulatedClock()
    tracker = RecordingTracker(clock)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, tracker=tracker, executor={"interrupt_after": 1})
    assert tracker.closed_with == "KILLED"
    assert sorted(tracker.interrupted) == sorted(set(tracker.started) - set(tracker.finished))


def test_a_trial_is_told_once_its_run_id_is_stored(tmp_path: Path):
    clock = SimulatedClock()
    tracker = RecordingTracker(clock, run_id_delay_s=15.0)  # slower than the trials
    result, _, _, _ = _run(tmp_path, tracker=tracker)
    study = _study(tmp_path)
    assert all(t.user_attrs[RUN_ID_ATTR] == f"run-{t.number}" for t in study.trials)
    assert result.n_complete == 6
    assert clock.now() == pytest.approx(30.0 + 5.0, abs=0.5)  # the last run id, 15 s in


def test_a_tracker_that_never_answers_delays_telling_by_the_bound_only(tmp_path: Path):
    clock = SimulatedClock()
    tracker = RecordingTracker(clock, run_id_delay_s=math.inf)
    result, _, _, _ = _run(tmp_path, tracker=tracker, trials=2)
    assert result.n_complete == 2
    assert RUN_ID_WAIT_S <= clock.now() - 10.0 <= RUN_ID_WAIT_S + 1.0
    assert all(RUN_ID_ATTR not in t.user_attrs for t in _study(tmp_path).trials)


def test_run_ids_answered_after_their_trials_were_told_are_kept_on_the_study(tmp_path: Path):
    """A lagging MLflow answers run ids after the wait bound: the trials are told without
    them, and the ids still reach every reader through the study (no MLflow lookup)."""
    clock = SimulatedClock()
    tracker = RecordingTracker(clock, run_id_delay_s=RUN_ID_WAIT_S + 15.0)
    _run(tmp_path, tracker=tracker)
    study = _study(tmp_path)
    assert all(RUN_ID_ATTR not in t.user_attrs for t in study.trials), "told before answered"
    linked = {r.number: r.mlflow_run_id for r in StudyView(study).records if r.mlflow_run_id}
    assert len(linked) >= 4 and all(run == f"run-{n}" for n, run in linked.items())


def test_a_tracker_without_runs_is_never_waited_for(tmp_path: Path):
    clock = SimulatedClock()
    tracker = RecordingTracker(clock, keeps_runs=False)
    _run(tmp_path, tracker=tracker)
    assert clock.now() == pytest.approx(30.0)


def test_tracking_errors_come_back_through_one_channel(tmp_path: Path):
    clock = SimulatedClock()
    tracker = RecordingTracker(clock, errors=["MLflow: disk full"])
    result, _, _, _ = _run(tmp_path, tracker=tracker)
    assert result.tracking_errors == ["MLflow: disk full"]


def test_per_epoch_values_are_kept_in_optuna(tmp_path: Path):
    def script(task: TrialTask) -> Outcome:
        outcome = _seconds(task)
        outcome.history = [{"epoch": e, "val_accuracy": 0.1 * e} for e in (1, 2, 3)]
        return outcome

    _run(tmp_path, script, trials=2)
    trial = _study(tmp_path).trials[0]
    assert trial.user_attrs["curve.val_accuracy"] == pytest.approx([0.1, 0.2, 0.3])


def test_a_single_objective_study_reports_intermediate_values(tmp_path: Path):
    def script(task: TrialTask) -> Outcome:
        return Outcome(
            metrics={"accuracy": 0.3}, history=[{"val_accuracy": 0.1 * e} for e in (1, 2, 3)]
        )

    single = {**SPEC, "name": "single", "objectives": {"accuracy": "maximize"}}
    simulate_study(single, script, storage=str(tmp_path / "study.journal"), trials=1)
    trial = _study(tmp_path, "single").trials[0]
    assert trial.intermediate_values == pytest.approx({0: 0.1, 1: 0.2, 2: 0.3})


def test_an_older_study_gains_optunas_metric_names_on_resume(tmp_path: Path):
    """Studies made before kept their objectives in a user attribute only."""
    storage = open_storage(str(tmp_path / "study.journal"))
    older = optuna.create_study(
        study_name="policies", storage=storage, directions=["maximize", "minimize"]
    )
    older.set_user_attr("objectives", SPEC["objectives"])
    assert older.metric_names is None
    result, _, _, _ = _run(tmp_path, trials=2)
    assert result.n_complete == 2
    assert _study(tmp_path).metric_names == ["accuracy", "train_time_s"]


def test_a_resume_with_other_objectives_is_refused(tmp_path: Path):
    _run(tmp_path, trials=1)
    with pytest.raises(SpecError, match="already exists .* with objectives"):
        other = {**SPEC, "objectives": {"accuracy": "maximize"}}
        simulate_study(other, _seconds, storage=str(tmp_path / "study.journal"))


def test_a_latency_target_is_refused_for_a_custom_objective(tmp_path: Path):
    spec = {**SPEC, "measure": {"latency_on": {"resources": {"edge": 1}}}}
    with pytest.raises(SpecError, match="measure.latency_on: times the built-in objective"):
        simulate_study(spec, _seconds, storage=str(tmp_path / "study.journal"))
    assert not (tmp_path / "study.journal").exists()


@pytest.fixture()
def study_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts paretotune's reads of whole studies (`optuna.Study.get_trials`: Optuna's own
    samplers read through their private cache, not this)."""
    reads: list[int] = []
    original = optuna.Study.get_trials

    def counted(self, *args, **kwargs):
        reads.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(optuna.Study, "get_trials", counted)
    return reads


@pytest.mark.parametrize("constraints", [[], ["accuracy >= 0.5"]])
def test_the_driver_reads_the_study_as_often_for_60_trials_as_for_6(
    tmp_path: Path, study_reads: list[int], constraints: list[str]
):
    """Nothing per trial re-reads the study: the counts, the front, the compute, the chart
    step and the snapshots are kept as trials end (reads at the start and the end only)."""
    reads = []
    for trials in (6, 60):
        study_reads.clear()
        folder = tmp_path / str(trials)
        folder.mkdir()
        result, *_ = _run(folder, trials=trials, constraints=constraints)
        assert result.n_complete == trials
        reads.append(len(study_reads))
    assert reads[0] == reads[1] and reads[0] <= 6, reads


def test_a_tracker_slower_than_the_trials_holds_dispatch_to_a_bounded_lag(tmp_path: Path):
    """Trials of 0.1 s, a tracker that takes 1 s to record each: the driver stops
    dispatching while 8 finished trials wait to be recorded (the run-id wait's limit),
    instead of running ahead and leaving MLflow a backlog of the whole study."""
    clock = SimulatedClock()
    tracker = RecordingTracker(clock, record_s=1.0)

    def quick(task: TrialTask) -> Outcome:
        return Outcome(seconds=0.1, metrics={"accuracy": 0.5, "train_time_s": 1.0})

    result, *_ = _run(tmp_path, quick, tracker=tracker, trials=40)
    assert result.n_complete == 40
    assert max(tracker.lags) <= 8, tracker.lags
    # paced by the tracker (40 s of recording, the last 8 after the driver's end); a
    # driver running ahead would have ended at 2 s
    assert 40.0 - 8 - 1 <= clock.now() <= 40.0 + 1
    assert all(t.user_attrs[RUN_ID_ATTR] == f"run-{t.number}" for t in _study(tmp_path).trials)


def test_a_run_marks_its_phases_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The marks `$PARETOTUNE_TIMELINE` asks for (benchmarks/startup.py's timeline)."""
    timeline = tmp_path / "timeline.jsonl"
    monkeypatch.setenv(_timeline.TIMELINE_ENV, str(timeline))
    _run(tmp_path)
    marks = _timeline.read(timeline)
    # the given executor is the caller's: no Ray to wait for, no workers stopped by the run
    assert [phase for phase, _ in marks] == [
        "run_study", "study_open", "tracker_open", "first_dispatch", "trials_done",
        "remeasured", "tracker_closed", "front_printed",
    ]  # fmt: skip
    moments = [t for _, t in marks]
    assert moments == sorted(moments)


def test_without_the_timeline_variable_no_marks_are_written(tmp_path: Path, monkeypatch):
    monkeypatch.delenv(_timeline.TIMELINE_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    _run(tmp_path)
    assert not list(tmp_path.rglob("*.jsonl"))


def test_a_resume_that_changes_what_the_values_mean_is_refused_in_one_line(tmp_path: Path):
    """Constraints, the dataset, the space, the splits, the epochs and the seed are the
    study's own: a resume asking for others is refused before anything is written (the
    budget, workers, sampler and goal may change)."""
    from paretotune.errors import SpecError
    from paretotune.testing import Outcome, simulate_study

    spec = {
        "name": "kept",
        "objectives": {"accuracy": "maximize", "train_time_s": "minimize"},
        "budget": {"trials": 3},
        "constraints": ["train_time_s <= 0.5"],
        "sampler": {"name": "random"},
    }

    def play(task):
        return Outcome(seconds=1.0, metrics={"accuracy": 0.5, "train_time_s": 0.4})

    storage = str(tmp_path / "study.journal")
    simulate_study(spec, play, storage=storage)
    before = (tmp_path / "study.journal").read_bytes()
    with pytest.raises(SpecError) as refused:
        simulate_study(spec | {"constraints": ["train_time_s <= 0.3"]}, play, storage=storage)
    assert str(refused.value).splitlines() == [
        "constraints: study 'kept' was run with ['train_time_s <= 0.5'], this run asks for "
        "['train_time_s <= 0.3']; resume it with its own setting, or run a new study (--name)"
    ]
    with pytest.raises(SpecError, match=r"^budget.epochs: study 'kept' was run with 15"):
        simulate_study(spec, play, storage=storage, epochs=5)
    assert (tmp_path / "study.journal").read_bytes() == before
    grown = simulate_study(spec, play, storage=storage, trials=5, workers=2)
    assert grown.result.n_complete == 5


def test_a_stop_between_asking_and_dispatching_leaves_nothing_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The signal can come after Optuna made a trial RUNNING and before the driver
    dispatched it: that trial is closed as interrupted and queued again as well."""
    from optuna.trial import TrialState
    from paretotune import _driver, open_storage
    from paretotune.testing import Outcome, simulate_study

    spec = {
        "name": "asked",
        "objectives": {"accuracy": "maximize", "train_time_s": "minimize"},
        "budget": {"trials": 6},
        "sampler": {"name": "random"},
    }
    sampled = _driver.sample_params
    calls = []

    def interrupted_on_the_fourth(trial, space):
        calls.append(trial.number)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return sampled(trial, space)

    monkeypatch.setattr(_driver, "sample_params", interrupted_on_the_fourth)

    def play(task):
        return Outcome(seconds=1.0, metrics={"accuracy": 0.5, "train_time_s": 0.4})

    storage = str(tmp_path / "study.journal")
    with pytest.raises(KeyboardInterrupt):
        simulate_study(spec, play, storage=storage, capacity=2)
    study = optuna.load_study(study_name="asked", storage=open_storage(storage))
    assert not study.get_trials(states=(TrialState.RUNNING,))
    assert len(study.get_trials(states=(TrialState.WAITING,))) >= 1
