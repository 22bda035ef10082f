"""Whole studies on a real local Ray, a real journal storage and MLflow on SQLite."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState
from paretotune import Client, NullTracker, open_storage, run_study
from paretotune.spaces import EXAMPLES_DIR
from paretotune.study._attrs import interrupted_numbers

pytestmark = pytest.mark.slow


def _child_runs(tracking_uri: str, experiment_id: str, parent_run_id: str):
    client = MlflowClient(tracking_uri)
    runs = client.search_runs(
        [experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent_run_id}'"
    )
    return client, runs


def test_digits_study_storage_and_mlflow_agree(ray_cluster, workdir: Path):
    storage = str(workdir / "study.journal")
    tracking = f"sqlite:///{workdir / 'mlflow.db'}"
    result = run_study(
        EXAMPLES_DIR / "digits.yaml",
        storage=storage,
        tracking_uri=tracking,
        trials=4,
        workers=2,
        epochs=3,
        progress=False,
    )
    assert result.n_complete == 4 and result.n_failed == 0
    assert result.pareto, "a study with complete trials has a non-empty front"

    study = optuna.load_study(study_name="digits-tradeoff", storage=open_storage(storage))
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    # 3 epochs: the covering trials include plain SGD, which barely starts to learn.
    assert max(t.values[0] for t in trials) > 0.8  # 10 classes: chance is 0.1
    for trial in trials:
        accuracy, train_time, latency = trial.values
        assert 0.0 <= accuracy <= 1.0
        assert train_time > 0 and latency > 0
        assert trial.user_attrs["metric.size_bytes"] > 0
        # quick for all, precise for whoever could join the front at dispatch
        assert trial.user_attrs["metric.latency_precise"] in (0.0, 1.0)
    front_numbers = {r.number for r in result.pareto}
    assert all(trials[n].user_attrs["metric.latency_precise"] == 1.0 for n in front_numbers)

    client, runs = _child_runs(tracking, result.experiment_id, result.parent_run_id)
    assert len(runs) == 4, "one child run per trial, nested under the study's parent"
    by_number = {int(r.data.tags["paretotune.trial_number"]): r for r in runs}
    pareto_numbers = {r.number for r in result.pareto}
    for trial in trials:
        run = by_number[trial.number]
        assert run.info.run_id == trial.user_attrs["mlflow_run_id"]
        assert run.info.status == "FINISHED"
        assert run.data.tags["paretotune.state"] == "COMPLETE"
        assert run.data.tags["pareto"] == str(trial.number in pareto_numbers).lower()
        assert run.data.params["mlp.width"] == str(trial.params["mlp.width"])
        assert run.data.metrics["accuracy"] == pytest.approx(trial.values[0])
        curve = client.get_metric_history(run.info.run_id, "train_loss")
        assert [m.step for m in curve] == [0, 1, 2], "per-epoch curves are logged by step"

    parent = client.get_run(result.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert "mlflow.parentRunId" not in parent.data.tags
    artifacts = {a.path for a in client.list_artifacts(result.parent_run_id, "pareto")}
    assert {"pareto/pareto_front.csv", "pareto/pareto_front.png"} <= artifacts

    front = Client(storage=storage, tracking_uri=tracking).pareto_front("digits-tradeoff")
    assert {r.number for r in front} == pareto_numbers
    assert all(r.mlflow_run_id == by_number[r.number].info.run_id for r in front)


def _slow_objective(params):
    time.sleep(0.05)
    if params["batch_size"] == 32:
        raise ValueError("batch 32 is cursed")
    return {
        "accuracy": params["learning_rate"],
        "train_time_s": params["batch_size"] / 100,
        "latency_ms": 1.0,
    }


def test_failing_trials_are_recorded_and_the_study_goes_on(ray_cluster, workdir: Path):
    storage = str(workdir / "study.journal")
    tracking = f"sqlite:///{workdir / 'mlflow.db'}"
    spec = {"name": "cursed", "space": {"batch_size": [32, 64]}, "budget": {"trials": 10}}
    result = run_study(
        spec, _slow_objective, storage=storage, tracking_uri=tracking, progress=False
    )
    study = optuna.load_study(study_name="cursed", storage=open_storage(storage))
    failed = [t for t in study.get_trials() if t.state == TrialState.FAIL]
    complete = [t for t in study.get_trials() if t.state == TrialState.COMPLETE]
    assert len(failed) + len(complete) == 10
    assert failed and complete
    assert all("batch 32 is cursed" in t.user_attrs["fail_reason"] for t in failed)
    assert all(t.params["batch_size"] == 32 for t in failed)
    assert result.n_failed == len(failed)
    client, runs = _child_runs(tracking, result.experiment_id, result.parent_run_id)
    statuses = {int(r.data.tags["paretotune.trial_number"]): r.info.status for r in runs}
    assert all(statuses[t.number] == "FAILED" for t in failed)

    # Running again resumes: the budget is already spent, nothing new runs or is logged.
    again = run_study(spec, _slow_objective, storage=storage, tracking_uri=tracking, progress=False)
    assert again.trials_run == 0 and again.parent_run_id == result.parent_run_id
    assert len(_child_runs(tracking, result.experiment_id, result.parent_run_id)[1]) == 10

    # A larger budget continues the same study where it stopped.
    more = run_study(
        spec, _slow_objective, storage=storage, tracking_uri=tracking, progress=False, trials=13
    )
    assert more.trials_run == 3
    assert len(_child_runs(tracking, result.experiment_id, result.parent_run_id)[1]) == 13


def test_objective_missing_a_metric_fails_that_trial(ray_cluster, workdir: Path):
    result = run_study(
        {"name": "partial", "budget": {"trials": 2}, "resources": {"workers": 1}},
        lambda params: {"accuracy": 0.5},
        storage=str(workdir / "s.journal"),
        tracking_uri=f"sqlite:///{workdir / 'm.db'}",
        progress=False,
    )
    assert result.n_failed == 2
    trial = optuna.load_study(
        study_name="partial", storage=open_storage(str(workdir / "s.journal"))
    ).trials[0]
    assert "returned no train_time_s, latency_ms" in trial.user_attrs["fail_reason"]


DRIVER = textwrap.dedent(
    """
    import sys, time
    from paretotune import run_study

    PAUSE_S = float(sys.argv[3])  # read here: workers have their own argv

    def objective(params):
        time.sleep(PAUSE_S)
        return {"accuracy": params["learning_rate"], "train_time_s": 1.0, "latency_ms": 1.0}

    run_study({"name": "crashy", "budget": {"trials": 6}, "resources": {"workers": 2}},
              objective, storage=sys.argv[1], tracking_uri=sys.argv[2], progress=False)
    """
)


def test_killed_driver_resumes_without_losing_or_duplicating(ray_cluster, workdir: Path):
    script = workdir / "driver.py"
    script.write_text(DRIVER)
    storage = str(workdir / "study.journal")
    tracking = f"sqlite:///{workdir / 'mlflow.db'}"
    env = os.environ | {"RAY_ADDRESS": ray_cluster.get_runtime_context().gcs_address}
    proc = subprocess.Popen([sys.executable, str(script), storage, tracking, "3"], env=env)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # wait until trials are running, then crash
            if Path(storage).exists():
                summaries = optuna.get_all_study_summaries(open_storage(storage))
                study = (
                    optuna.load_study(study_name="crashy", storage=open_storage(storage))
                    if summaries
                    else None
                )
                if study and any(t.state == TrialState.RUNNING for t in study.trials):
                    break
            time.sleep(0.5)
        else:
            pytest.fail("the driver never started a trial")
        time.sleep(0.5)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)

    study = optuna.load_study(study_name="crashy", storage=open_storage(storage))
    left_running = [t for t in study.trials if t.state == TrialState.RUNNING]
    assert left_running, "the crash left trials running"

    subprocess.run(
        [sys.executable, str(script), storage, tracking, "0.01"], env=env, check=True, timeout=180
    )
    study = optuna.load_study(study_name="crashy", storage=open_storage(storage))
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    # closed through Optuna's public API: listed on the study, told FAIL
    interrupted = [t for t in study.trials if t.number in interrupted_numbers(study)]
    assert len(complete) == 6, "the budget is met after the resume"
    assert {t.number for t in interrupted} == {t.number for t in left_running}
    assert all(t.state == TrialState.FAIL for t in interrupted)
    retried = {json.dumps(t.params, sort_keys=True) for t in complete}
    assert all(json.dumps(t.params, sort_keys=True) in retried for t in interrupted), (
        "interrupted trials are run again with the same params"
    )
    client = MlflowClient(tracking)
    parent = study.user_attrs["mlflow_parent_run_id"]
    runs = client.search_runs(
        [study.user_attrs["mlflow_experiment_id"]],
        filter_string=f"tags.`mlflow.parentRunId` = '{parent}'",
    )
    numbers = [int(r.data.tags["paretotune.trial_number"]) for r in runs]
    assert len(numbers) == len(set(numbers)), "no trial has two runs"
    for run in runs:
        if int(run.data.tags["paretotune.trial_number"]) in {t.number for t in interrupted}:
            assert run.info.status == "KILLED"
        else:
            assert run.info.status == "FINISHED"


def test_hypervolume_curve_only_rises(ray_cluster, workdir: Path, monkeypatch):
    monkeypatch.setattr("paretotune._driver.FRONT_EVERY_S", 0.0)  # publish after every trial
    tracking = f"sqlite:///{workdir / 'mlflow.db'}"
    result = run_study(
        {"name": "rising", "budget": {"trials": 24}, "sampler": {"name": "random"}},
        lambda p: {
            "accuracy": p["learning_rate"] * 5,
            "train_time_s": p["batch_size"] / 32,
            "latency_ms": 1.0 / p["batch_size"],
        },
        storage=str(workdir / "s.journal"),
        tracking_uri=tracking,
        progress=False,
    )
    curve = MlflowClient(tracking).get_metric_history(result.parent_run_id, "hypervolume")
    values = [m.value for m in sorted(curve, key=lambda m: m.step)]
    # results reach Optuna in bursts while MLflow boots, so fewer than 15 points
    assert len(values) >= 3, "charted from the 10th complete trial on"
    assert min(m.step for m in curve) >= 10
    assert all(b >= a - 1e-12 for a, b in zip(values, values[1:], strict=False))
    assert values[-1] == pytest.approx(result.hypervolume)


def _dies_on_batch_32(params):
    if params["batch_size"] == 32:
        os._exit(3)  # the worker process dies mid-trial
    return {"accuracy": params["learning_rate"], "train_time_s": 1.0, "latency_ms": 1.0}


def test_a_dying_worker_fails_its_trial_and_is_replaced(ray_cluster, workdir: Path):
    storage = str(workdir / "s.journal")
    spec = {
        "name": "dying",
        "space": {"batch_size": [32, 64]},
        "budget": {"trials": 8},
        "sampler": {"name": "random"},
    }
    result = run_study(
        spec,
        _dies_on_batch_32,
        storage=storage,
        tracking_uri=f"sqlite:///{workdir / 'm.db'}",
        progress=False,
    )
    trials = optuna.load_study(study_name="dying", storage=open_storage(storage)).trials
    died = [t for t in trials if t.params.get("batch_size") == 32]
    assert died and result.n_complete == 8 - len(died) and result.n_failed == len(died)
    assert all("worker died" in t.user_attrs["fail_reason"] for t in died)
    assert all(t.state == TrialState.COMPLETE for t in trials if t not in died)


def _hanging_objective(params):
    if params["batch_size"] == 32:
        time.sleep(120)  # a hung objective
    return {"accuracy": 0.5, "train_time_s": 0.1, "latency_ms": 1.0}


def test_a_trial_past_its_time_limit_fails_and_the_study_goes_on(ray_cluster, workdir: Path):
    storage = str(workdir / "study.journal")
    spec = {
        "name": "hanging",
        "space": {"batch_size": [32, 64]},
        "budget": {"trials": 6, "trial_timeout_s": 2},
        "sampler": {"name": "random"},
    }
    started = time.monotonic()
    result = run_study(
        spec, _hanging_objective, storage=storage, tracker=NullTracker(), progress=False
    )
    # (each timed-out trial's actor is replaced by a fresh worker: seconds each under load;
    # a hung trial would cost 120 s each)
    assert time.monotonic() - started < 200, "a hung trial hung the study"
    study = optuna.load_study(study_name="hanging", storage=open_storage(storage))
    failed = [t for t in study.get_trials() if t.state == TrialState.FAIL]
    complete = [t for t in study.get_trials() if t.state == TrialState.COMPLETE]
    assert len(failed) + len(complete) == 6 and failed and complete
    assert all(t.params["batch_size"] == 32 for t in failed)
    assert all("budget.trial_timeout_s = 2 s" in t.user_attrs["fail_reason"] for t in failed)
    assert result.n_failed == len(failed)
    later = [t for t in complete if t.number > min(f.number for f in failed)]
    assert later, "trials after a stopped one ran on the replaced worker"


TAGGED_DRIVER = textwrap.dedent(
    """
    import sys, time
    from paretotune import run_study

    CALLS = sys.argv[1] + ".calls"  # one byte a trial begun

    def objective(params):
        with open(CALLS, "a+") as calls:
            calls.write("x")
            calls.seek(0)
            begun = len(calls.read())
        time.sleep(2.0 if begun <= 6 else 600)  # from the 7th on, no trial ends
        lr = params["learning_rate"]
        return {"accuracy": lr, "train_time_s": lr * lr, "latency_ms": 1.0 / params["batch_size"]}

    run_study({"name": "tagged", "budget": {"trials": 40}, "resources": {"workers": 1},
               "sampler": {"name": "random"}},
              objective, storage=sys.argv[1], tracking_uri=sys.argv[2], progress=False)
    """
)


def _alive_with(text: str) -> bool:
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and text in (entry / "cmdline").read_text():
                return True
        except OSError:
            continue
    return False


def test_pareto_tags_follow_the_front_even_when_the_driver_is_killed(ray_cluster, workdir: Path):
    script = workdir / "driver.py"
    script.write_text(TAGGED_DRIVER)
    storage = str(workdir / "study.journal")
    tracking = f"sqlite:///{workdir / 'mlflow.db'}"
    env = os.environ | {"RAY_ADDRESS": ray_cluster.get_runtime_context().gcs_address}
    proc = subprocess.Popen([sys.executable, str(script), storage, tracking], env=env)
    try:
        deadline, seen = time.monotonic() + 180, 0
        while seen < 6:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.2)
            if Path(storage).exists() and optuna.get_all_study_summaries(open_storage(storage)):
                study = optuna.load_study(study_name="tagged", storage=open_storage(storage))
                seen = len(study.get_trials(states=[TrialState.COMPLETE]))
        time.sleep(5.0)  # past the front's republication (no later trial ends)
        proc.send_signal(signal.SIGKILL)  # the driver only: its logging process drains
    finally:
        proc.wait(timeout=30)
    deadline = time.monotonic() + 60
    while _alive_with(tracking):
        assert time.monotonic() < deadline, "the logging process never finished"
        time.sleep(0.5)

    study = optuna.load_study(study_name="tagged", storage=open_storage(storage))
    complete = study.get_trials(states=[TrialState.COMPLETE])
    pareto = {t.number for t in study.best_trials}
    runs = MlflowClient(tracking).search_runs(
        [study.user_attrs["mlflow_experiment_id"]], "tags.`paretotune.trial_number` != ''"
    )
    tagged = {int(r.data.tags["paretotune.trial_number"]): r.data.tags.get("pareto") for r in runs}
    assert {t.number for t in complete} <= set(tagged), "every told trial has its run"
    assert {n for n in pareto} == {n for n, v in tagged.items() if v == "true"}
    assert all(tagged[t.number] == "false" for t in complete if t.number not in pareto)
