"""Compression variants (``compression: {variants: [...]}``): every trained model forked
into each listed compression, each fork a trial of its own. The spec and the sampling,
the forks of a real training, the driver's policies on a simulated clock, and a whole
study on a real Ray with MLflow on SQLite."""

from __future__ import annotations

import math
import os
import signal
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState
from paretotune import Client, open_storage, run_study
from paretotune.execution import TrialTask
from paretotune.spaces import SpecError, sample_params, validate_spec
from paretotune.study._attrs import FORKED_FROM_ATTR, PARAMS_ATTR, TRIAL_SECONDS_ATTR, VARIANT_ATTR
from paretotune.study._writer import StudyWriter
from paretotune.testing import Outcome, simulate_study

VARIANTS = ["int8_dynamic", "prune_unstructured"]
SPEC = {
    "name": "forks",
    "objectives": {"accuracy": "maximize", "latency_ms": "minimize"},
    "space": {
        "architecture": "mlp",
        "mlp": {"depth": 1, "width": [16, 32, 64]},
        "optimizer": "adam",
        "compression": {"variants": VARIANTS},
    },
    "budget": {"trials": 4, "epochs": 3},
    "resources": {"workers": 2},
    "sampler": {"name": "random"},
}


# -- the spec and the sampling ---------------------------------------------------------
def test_the_spec_takes_variants_and_refuses_what_cannot_be_one():
    spec = validate_spec(SPEC)
    assert spec.space.variants == VARIANTS and spec.space.choices("compression") == ["none"]
    assert validate_spec({"name": "x"}).space.variants == []
    tuned = SPEC["space"] | {"prune_unstructured": {"sparsity": 0.5}}
    assert validate_spec(SPEC | {"space": tuned}).space.option_dimensions("prune_unstructured") == {
        "sparsity": 0.5
    }
    for variants, said in (
        (["distill"], "'distill' cannot be a variant: it changes the training"),
        (["none"], "'none' is not one of: int8_dynamic, fp16, bf16, prune_structured"),
        (["fp16", "fp16"], "duplicate variants"),
        ([], "at least 1 item"),
    ):
        space = SPEC["space"] | {"compression": {"variants": variants}}
        with pytest.raises(SpecError, match="space.compression") as refused:
            validate_spec(SPEC | {"space": space})
        assert said in str(refused.value)
    stray = SPEC["space"] | {"fp16": {}, "prune_structured": {"amount": 0.3}}
    with pytest.raises(SpecError, match="space.prune_structured: has settings but"):
        validate_spec(SPEC | {"space": stray})


def test_a_trial_trains_uncompressed_and_draws_the_knobs_its_forks_use():
    space = validate_spec(
        SPEC | {"space": SPEC["space"] | {"compression": {"variants": ["prune_structured"]}}}
    ).space
    trial = optuna.create_study().ask()
    params = sample_params(trial, space)
    assert params["compression"] == "none" and "compression" not in trial.params
    assert 0.2 <= params["prune_structured.amount"] <= 0.7
    assert "prune_structured.amount" in trial.params  # the sampler learns it from the forks


def test_a_custom_objective_is_refused_variants_before_anything_runs(tmp_path: Path):
    with pytest.raises(SpecError, match="space.compression.variants: forks the built-in"):
        run_study(SPEC, lambda params: {}, storage=str(tmp_path / "s.journal"))
    assert not (tmp_path / "s.journal").exists()


# -- the forks of a real training ------------------------------------------------------
def test_every_fork_is_measured_after_compressing_from_one_training():
    from paretotune.objectives import TrialContext, evaluate

    context = TrialContext(
        dataset={"source": "digits"}, epochs=3, latency_repeats=5, variants=tuple(VARIANTS)
    )
    params = {"architecture": "mlp", "optimizer": "adam", "prune_unstructured.sparsity": 0.8}
    outcome = evaluate(params, context, keep_model=True)
    base = outcome.metrics
    assert [v.compression for v in outcome.variants] == VARIANTS
    int8, sparse = outcome.variants
    for fork in outcome.variants:
        assert fork.seconds > 0 and fork.model is not None
        assert fork.metrics["train_time_s"] == base["train_time_s"]  # no fine-tune here
        assert fork.metrics["accuracy_before_compression"] == base["accuracy"]
        assert fork.metrics["size_bytes_before_compression"] == base["size_bytes"]
    assert int8.metrics["size_bytes"] < base["size_bytes"] / 2  # int8 weights, measured
    assert sparse.metrics["sparsity"] == pytest.approx(0.8, abs=0.01)
    assert sparse.metrics["size_bytes"] < base["size_bytes"]
    assert type(outcome.model.net[0]).__name__ == "Linear"  # the trial's own: uncompressed


# -- the driver's policies, on a simulated clock ---------------------------------------
def _forked(task: TrialTask) -> Outcome:
    """A trial whose forks are faster and, pruned, a little less accurate."""
    width = task.params["mlp.width"]
    accuracy, latency = 0.5 + width / 128, width / 100
    return Outcome(
        seconds=10.0,
        metrics={"accuracy": accuracy, "latency_ms": latency},
        variants={
            "int8_dynamic": ({"accuracy": accuracy, "latency_ms": latency * 0.8}, 0.5),
            "prune_unstructured": ({"accuracy": accuracy - 0.01, "latency_ms": latency}, 0.3),
        },
    )


def _simulate(tmp_path: Path, script=_forked, spec=SPEC, **overrides):
    run = simulate_study(
        spec, script, storage=str(tmp_path / "study.journal"), capacity=2, **overrides
    )
    study = optuna.load_study(
        study_name=spec["name"], storage=open_storage(str(tmp_path / "study.journal"))
    )
    return run, study


def _variants(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.trials if FORKED_FROM_ATTR in t.user_attrs]


def test_variants_are_trials_of_their_own_and_the_budget_counts_trainings(tmp_path: Path):
    run, study = _simulate(tmp_path, constraints=["latency_ms <= 0.4"])
    assert run.result.n_complete == 4 and run.result.n_variants == 8
    assert len(study.trials) == 12 and all(t.state == TrialState.COMPLETE for t in study.trials)
    trainings = {t.number: t for t in study.trials if FORKED_FROM_ATTR not in t.user_attrs}
    for variant in _variants(study):
        base = trainings[variant.user_attrs[FORKED_FROM_ATTR]]
        kind = variant.user_attrs[VARIANT_ATTR]
        assert variant.params == {**base.params, "compression": kind}
        assert variant.user_attrs[PARAMS_ATTR] == {
            **base.user_attrs[PARAMS_ATTR],
            "compression": kind,
        }
        width = base.user_attrs[PARAMS_ATTR]["mlp.width"]
        assert variant.values[1] == pytest.approx(
            width / 100 * (0.8 if kind == "int8_dynamic" else 1)
        )
        assert variant.user_attrs[TRIAL_SECONDS_ATTR] == (0.5 if kind == "int8_dynamic" else 0.3)
        # the samplers read an added trial's constraint values as an asked one's
        feasible = variant.values[1] <= 0.4
        assert (variant.constraints == {"0": 0.0}) == feasible
        assert run.tracker.finished[variant.number] == "COMPLETE"
    assert run.result.compute.trial_seconds == pytest.approx(4 * 10.0 + 4 * 0.8)
    front = {r.number for r in run.result.pareto}
    assert front & {t.number for t in _variants(study)}, "int8 forks are faster: on the front"


def test_a_resume_adds_no_variant_twice_and_forks_the_new_trainings(tmp_path: Path):
    _simulate(tmp_path)
    run, study = _simulate(tmp_path, trials=6)
    assert run.result.n_complete == 6 and run.result.n_variants == 12
    forks = [(t.user_attrs[FORKED_FROM_ATTR], t.user_attrs[VARIANT_ATTR]) for t in _variants(study)]
    assert len(forks) == len(set(forks)) == 12


def test_failed_and_stopped_trials_yield_no_variants(tmp_path: Path):
    def fails_every_other(task: TrialTask) -> Outcome:
        outcome = _forked(task)
        if task.number % 2:
            outcome.error = "ValueError: scripted"
        return outcome

    run, study = _simulate(tmp_path, fails_every_other, trials=6)
    failed = {t.number for t in study.trials if t.state == TrialState.FAIL}
    assert failed and not failed & {t.user_attrs[FORKED_FROM_ATTR] for t in _variants(study)}

    def learns(task: TrialTask) -> Outcome:
        outcome = _forked(task)
        plateau = outcome.metrics["accuracy"]
        outcome.history = [
            {"epoch": float(e), "val_accuracy": plateau * (1 - math.exp(-e)), "latency_ms": 0.1}
            for e in range(1, 10)
        ]
        return outcome

    spec = SPEC | {
        "name": "forks-asha",
        "budget": {"trials": 12, "epochs": 9},
        "early_stopping": {"method": "mo_asha", "min_epochs": 1, "reduction_factor": 3},
    }
    run, study = _simulate(tmp_path, learns, spec)
    pruned = {t.number for t in study.trials if t.state == TrialState.PRUNED}
    assert pruned and not pruned & {t.user_attrs[FORKED_FROM_ATTR] for t in _variants(study)}
    assert len(_variants(study)) == 2 * run.result.n_complete


# -- a whole study, for real -----------------------------------------------------------
def test_a_study_s_variants_are_nested_runs_with_models_that_load(ray_cluster, workdir: Path):
    tracking = f"sqlite:///{workdir / 'mlflow.db'}"
    spec = SPEC | {"budget": {"trials": 2, "epochs": 3}, "sampler": {"name": "tpe"}}
    result = run_study(spec, storage=str(workdir / "study.journal"), tracking_uri=tracking)
    assert result.n_complete == 2 and result.n_variants == 4
    client = Client(storage=str(workdir / "study.journal"), tracking_uri=tracking)
    records = client.trials("forks")
    assert len(records) == 6 and all(r.state == "COMPLETE" for r in records)
    mlflow = MlflowClient(tracking)
    by_number = {r.number: r for r in records}
    for record in records:
        if record.params["compression"] == "none":
            continue
        run = mlflow.get_run(record.mlflow_run_id)
        base = by_number[int(run.data.tags["paretotune.forked_from"])]
        assert run.data.tags["mlflow.parentRunId"] == base.mlflow_run_id, "under its trial's run"
        assert run.data.tags["paretotune.study_run_id"] == result.parent_run_id
        assert run.data.tags["paretotune.variant"] == record.params["compression"]
        assert run.data.metrics["accuracy"] == pytest.approx(record.values["accuracy"])
        model = client.load_model(client.trial("forks", record.number))
        quantized = any("quantized" in type(m).__module__ for m in model.modules())
        assert quantized == (record.params["compression"] == "int8_dynamic")


def test_a_ctrl_c_while_a_trial_is_told_waits_for_its_variants(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """SIGINT as a trial's first variant is written: the trial's end, its tell and both
    of its variants are written before the interrupt takes effect (a variant cut off
    there would never be made again: its trial is complete)."""
    real_forked = StudyWriter.forked
    signalled: list[int] = []

    def interrupted_while_forking(self, base, fork, end):
        if not signalled:
            signalled.append(base.number)
            os.kill(os.getpid(), signal.SIGINT)
        return real_forked(self, base, fork, end)

    monkeypatch.setattr(StudyWriter, "forked", interrupted_while_forking)
    with pytest.raises(KeyboardInterrupt):
        _simulate(tmp_path)
    study = optuna.load_study(
        study_name=SPEC["name"], storage=open_storage(str(tmp_path / "study.journal"))
    )
    [base] = signalled
    forks = [t.user_attrs[VARIANT_ATTR] for t in _variants(study)]
    assert study.trials[base].state == TrialState.COMPLETE
    assert sorted(forks) == sorted(VARIANTS), "both variants of the told trial were added"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
