"""MO-ASHA end to end: real training of digits models on the session's Ray, rung
decisions shared by the workers through one actor, recorded in Optuna and MLflow."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState
from paretotune import Client, run_study
from paretotune.study import open_storage

pytestmark = pytest.mark.slow

SPEC = {
    "name": "digits-asha",
    "dataset": {"source": "digits"},
    "space": {
        "architecture": "mlp",
        "mlp": {"depth": [1, 2], "width": [8, 64]},
        "optimizer": ["adam", "sgd"],
        "sgd": {"momentum": 0.0},
        "learning_rate": {"low": 0.0005, "high": 0.01, "log": True},
        "compression": ["none"],
    },
    "budget": {"trials": 10, "epochs": 6},
    "resources": {"workers": 2},
    "sampler": {"name": "random"},
    "early_stopping": {"method": "mo_asha", "min_epochs": 1, "reduction_factor": 3},
    "constraints": ["latency_ms <= 100"],
}


def test_mo_asha_on_ray_stops_trials_and_keeps_them_off_the_front(ray_cluster, workdir: Path):
    storage = str(workdir / "study.journal")
    tracking = f"sqlite:///{workdir / 'mlflow.db'}"
    result = run_study(SPEC, storage=storage, tracking_uri=tracking, progress=False)
    assert result.n_complete + result.n_pruned == 10 and result.n_failed == 0
    assert result.n_pruned > 0, "with rungs at epochs 1 and 3, some trials are stopped"
    assert result.compute.epochs < 10 * 6 and result.compute.epochs_saved > 0
    assert result.n_feasible == result.n_complete  # a loose constraint: all feasible

    study = optuna.load_study(study_name="digits-asha", storage=open_storage(storage))
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    for trial in pruned:
        epoch = trial.user_attrs["stopped_at_epoch"]
        assert epoch in (1, 3) and trial.user_attrs["epochs_trained"] == epoch
        assert trial.user_attrs[f"rung.{(1, 3).index(epoch)}"]["promoted"] is False
        assert "latency_ms" in trial.user_attrs[f"rung.{(1, 3).index(epoch)}"]["values"]
    pruned_numbers = {t.number for t in pruned}
    assert not pruned_numbers & {r.number for r in result.pareto}
    front = Client(storage=storage, tracking_uri=tracking).pareto_front("digits-asha")
    assert front and not pruned_numbers & {r.number for r in front}

    runs = MlflowClient(tracking).search_runs(
        [result.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{result.parent_run_id}'",
    )
    by_number = {int(r.data.tags["paretotune.trial_number"]): r for r in runs}
    for number in pruned_numbers:
        run = by_number[number]
        assert run.info.status == "KILLED"
        assert run.data.tags["paretotune.state"] == "PRUNED"
        assert run.data.tags["paretotune.stopped_at_epoch"] in ("1", "3")
    parent = MlflowClient(tracking).get_run(result.parent_run_id)
    assert parent.data.metrics["epochs_saved"] == result.compute.epochs_saved

    # the front's latencies, measured again once no trial ran, are kept beside the first:
    # the exact front's (with the members beaten within latency noise, ranked 1 after)
    isolated = study.user_attrs["isolated_measurements"]
    ranked = Client(storage=storage, tracking_uri=tracking).front("digits-asha").records
    exact = {r.number for r in ranked if r.pareto_rank == 0 or r.within_noise_of is not None}
    assert {int(n) for n in isolated} == exact >= {r.number for r in result.pareto}
    for record in front:
        assert (
            record.metrics["latency_ms_isolated"]
            == isolated[str(record.number)]["latency_ms_isolated"]
        )
        assert record.metrics["latency_ms_isolated"] > 0 and record.metrics["latency_ms"] > 0
        run = by_number[record.number]
        assert run.data.metrics["latency_ms_isolated"] == pytest.approx(
            record.metrics["latency_ms_isolated"]
        )
