"""Every family x optimizer x compression in one study, on digits and on a user CSV;
regression on diabetes. Small budgets: the point is that every option runs end to end and
its effect is visible in MLflow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest
from mlflow import MlflowClient
from paretotune import Client, open_storage, run_study
from paretotune.spaces import COMPRESSIONS, FAMILIES, OPTIMIZERS
from sklearn.datasets import load_digits

pytestmark = pytest.mark.slow

SMALL_KNOBS = {
    "mlp": {"depth": 1, "width": 32},
    "cnn": {"blocks": 1, "channels": 8, "head_width": 16},
    "rnn": {"hidden_size": 16, "layers": 1},
    "transformer": {"d_model": 16, "heads": 2, "layers": 1, "ff_width": 32},
}


def _everything_spec(name: str, dataset: dict) -> dict:
    return {
        "name": name,
        "dataset": dataset,
        "space": {
            "architecture": list(FAMILIES),
            "optimizer": list(OPTIMIZERS),
            "compression": list(COMPRESSIONS),
            "learning_rate": {"low": 3e-3, "high": 3e-2, "log": True},
            "prune_structured": {"finetune_epochs": 1},
            **SMALL_KNOBS,
        },
        "budget": {"trials": len(COMPRESSIONS), "epochs": 2},
        "resources": {"workers": 2},
        "sampler": {"name": "random"},
    }


def _check_every_option_ran(result, storage: str, tracking: str) -> None:
    study = optuna.load_study(study_name=result.name, storage=open_storage(storage))
    failed = [(t.params, t.user_attrs.get("fail_reason", "")[:300]) for t in study.trials]
    assert result.n_failed == 0, [(params, reason) for params, reason in failed if reason]
    trials = Client(storage=storage, tracking_uri=tracking).trials(result.name)
    assert {t.params["architecture"] for t in trials} == set(FAMILIES)
    assert {t.params["optimizer"] for t in trials} == set(OPTIMIZERS)
    assert {t.params["compression"] for t in trials} == set(COMPRESSIONS)
    # 2 epochs at a random learning rate: not every trial learns, the best one must.
    assert max(t.values["accuracy"] for t in trials) > 0.5  # chance is 0.1
    mlflow = MlflowClient(tracking)
    for trial in trials:
        run = mlflow.get_run(trial.mlflow_run_id)
        compression = trial.params["compression"]
        assert run.data.tags["compression"] == compression
        assert run.data.tags["architecture"] == trial.params["architecture"]
        metrics = run.data.metrics
        assert 0.0 <= metrics["accuracy"] <= 1.0
        for measured in ("latency_ms", "size_bytes", "train_time_s"):
            assert metrics[measured] > 0
        if compression != "none":
            assert "accuracy_before_compression" in metrics
            assert "size_bytes_before_compression" in metrics
            assert "latency_ms_before_compression" in metrics
            own = [k for k in run.data.params if k.startswith(f"{compression}.")]
            assert all(run.data.params[k] for k in own)
        if compression in (
            "int8_dynamic",
            "fp16",
            "bf16",
            "prune_structured",
            "prune_unstructured",
        ):
            assert metrics["size_bytes"] < metrics["size_bytes_before_compression"]
        if compression == "prune_structured":
            assert metrics["n_params"] < metrics["n_params_before_compression"]


def test_every_family_optimizer_and_compression_on_digits(ray_cluster, workdir: Path):
    storage, tracking = str(workdir / "s.journal"), f"sqlite:///{workdir / 'm.db'}"
    spec = _everything_spec("everything-digits", {"source": "digits"})
    result = run_study(spec, storage=storage, tracking_uri=tracking, progress=False)
    _check_every_option_ran(result, storage, tracking)


def test_every_option_on_a_user_csv(ray_cluster, workdir: Path):
    digits = load_digits()
    columns = [f"px{i}" for i in range(64)]
    rows = np.column_stack([digits.data, digits.target])
    csv = workdir / "digits.csv"
    np.savetxt(
        csv, rows, delimiter=",", header=",".join([*columns, "label"]), comments="", fmt="%g"
    )
    storage, tracking = str(workdir / "s.journal"), f"sqlite:///{workdir / 'm.db'}"
    dataset = {"source": "csv", "path": str(csv), "target": "label", "image_shape": [1, 8, 8]}
    spec = _everything_spec("everything-csv", dataset)
    result = run_study(spec, storage=storage, tracking_uri=tracking, progress=False)
    _check_every_option_ran(result, storage, tracking)


def test_regression_on_diabetes_minimises_mse(ray_cluster, workdir: Path):
    storage, tracking = str(workdir / "s.journal"), f"sqlite:///{workdir / 'm.db'}"
    spec = {
        "name": "diabetes",
        "dataset": {"source": "diabetes"},
        "space": {"optimizer": ["adam"], "mlp": {"depth": 1}},
        "budget": {"trials": 3, "epochs": 5},
    }
    result = run_study(spec, storage=storage, tracking_uri=tracking, progress=False)
    assert result.objectives == {
        "mse": "minimize",
        "train_time_s": "minimize",
        "latency_ms": "minimize",
    }
    assert result.n_complete == 3
    for record in Client(storage=storage).trials("diabetes"):
        assert record.values["mse"] > 0
        assert {"mae", "r2", "test_mse"} <= set(record.metrics)
        assert "accuracy" not in record.metrics
