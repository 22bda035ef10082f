"""Dispatch on a real Ray: trials only go to placed workers, a shortfall is said once, a
study no node can host is refused, and a lost worker's trial is retried."""

from __future__ import annotations

import functools
import os
import re
import time
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState
from paretotune import Client, SpecError, open_storage, run_study
from paretotune.execution import _placement
from paretotune.study._attrs import retried_numbers
from paretotune.tracking.mlflow.schema import STATE_TAG, TRIAL_TAG

pytestmark = pytest.mark.slow


def _quick(params):
    time.sleep(0.3)
    return {"accuracy": params["learning_rate"], "train_time_s": 0.3, "latency_ms": 1.0}


def _one_second(params):
    time.sleep(1.0)
    return {"accuracy": params["learning_rate"], "train_time_s": 1.0, "latency_ms": 1.0}


def test_more_workers_than_the_cluster_places_go_on_with_those_placed(
    ray_cluster, workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
):
    """4 workers of 1 CPU asked of a 2-CPU Ray: the 2 placed run every trial (none waits
    on an actor Ray cannot place), and the shortfall is said once."""
    monkeypatch.setattr(_placement, "SHORTFALL_NOTICE_S", 8.0)  # (30 s by default)
    spec = {"name": "short", "budget": {"trials": 20}, "resources": {"workers": 4}}
    started = time.monotonic()
    result = run_study(spec, _one_second, storage=str(workdir / "s.journal"), progress=False)
    assert result.n_complete == 20
    assert time.monotonic() - started < 120, "no trial waited on an unplaced worker"
    notes = [line for line in capsys.readouterr().err.splitlines() if "resources:" in line]
    assert len(notes) == 1, notes
    # The shared Ray may lend a CPU to another test at that moment: 1 or 2 are placed.
    placed = re.match(
        r"note: resources: asked for 4 workers × 1 CPU; the cluster offers 1 node: 2 CPUs, "
        r"0 GPUs in all: going on with (\d) workers? \(the other (\d) start if the cluster grows\)",
        notes[0],
    )
    assert placed, notes
    assert int(placed[1]) in (1, 2) and int(placed[1]) + int(placed[2]) == 4, notes


def test_a_study_no_node_can_host_is_refused_before_it_exists(ray_cluster, workdir: Path):
    spec = {"name": "gpu-less", "budget": {"trials": 2}, "resources": {"gpus_per_trial": 1}}
    storage = str(workdir / "s.journal")
    with pytest.raises(SpecError) as refused:
        run_study(spec, _quick, storage=storage, progress=False)
    assert refused.value.problems == [
        "resources: asked for 2 workers × 1 CPU + 1 GPU; the cluster offers 1 node: 2 CPUs, "
        "0 GPUs in all, so no worker can ever be placed"
    ]
    assert "gpu-less" not in optuna.get_all_study_names(open_storage(storage))


def _lost_once_or_failing(folder: str, params):
    """Batch 32: the worker process dies the first time each config runs. Batch 64: the
    trial's own error, every time."""
    if params["batch_size"] == 32:
        marker = Path(folder) / f"lost-{params['learning_rate']!r}"
        if not marker.exists():
            marker.touch()
            os._exit(3)  # the worker dies mid-trial
    if params["batch_size"] == 64:
        raise ValueError("a trial's own error")
    return {"accuracy": params["learning_rate"], "train_time_s": 0.1, "latency_ms": 1.0}


def test_a_lost_worker_is_retried_with_its_params_and_a_trials_own_error_is_not(
    ray_cluster, workdir: Path
):
    storage, tracking = str(workdir / "s.journal"), f"sqlite:///{workdir / 'm.db'}"
    spec = {
        "name": "retried",
        "space": {"batch_size": [32, 64, 128]},
        "budget": {"trials": 9},
        "sampler": {"name": "random"},
        "resources": {"retries": 2},
    }
    objective = functools.partial(_lost_once_or_failing, str(workdir))
    result = run_study(spec, objective, storage=storage, tracking_uri=tracking, progress=False)
    study = optuna.load_study(study_name="retried", storage=open_storage(storage))
    trials = {t.number: t for t in study.trials}
    retried = retried_numbers(study)
    assert retried, "the random sampler drew batch 32 at least once"
    assert result.n_complete + result.n_failed == 9, "retried attempts do not count"
    for number in retried:
        lost = trials[number]
        assert lost.state == TrialState.FAIL and "worker died" in lost.user_attrs["fail_reason"]
        again = [t for t in trials.values() if t.user_attrs.get("retry_of") == number]
        assert len(again) == 1 and again[0].user_attrs["attempt"] == 2
        assert again[0].params == lost.params and again[0].state == TrialState.COMPLETE
    failing = [t for t in trials.values() if t.params["batch_size"] == 64]
    assert all(t.state == TrialState.FAIL and t.number not in retried for t in failing)
    assert result.n_failed == len(failing), "a trial's own error is never retried"
    assert Client(storage=storage).summary("retried").n_retried == len(retried)

    mlflow = MlflowClient(tracking)
    experiment = mlflow.get_experiment_by_name("retried")
    assert experiment is not None
    runs = {
        int(r.data.tags[TRIAL_TAG]): r
        for r in mlflow.search_runs([experiment.experiment_id])
        if TRIAL_TAG in r.data.tags
    }
    for number in retried:
        assert runs[number].data.tags[STATE_TAG] == "RETRIED"
        assert runs[number].info.status == "FAILED"
    for trial in trials.values():
        if "retry_of" in trial.user_attrs:
            tags = runs[trial.number].data.tags
            assert tags["paretotune.attempt"] == "2"
            assert tags["paretotune.retry_of"] == str(trial.user_attrs["retry_of"])
