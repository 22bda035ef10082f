"""evaluate: real training on real data, every family/optimizer/schedule, metrics, callbacks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from paretotune.objectives import (
    METRIC_NAMES,
    StopTraining,
    TrainingDiverged,
    TrialContext,
    TrivialModel,
    evaluate,
    load_dataset,
    load_model_file,
    model_to_bytes,
    task_metrics,
)

DIGITS = {"source": "digits"}


def test_metric_names():
    assert METRIC_NAMES == {
        "accuracy", "f1_macro", "roc_auc", "mse", "mae", "r2", "train_time_s",
        "latency_ms", "size_bytes", "peak_mem_mb", "throughput_sps",
    }  # fmt: skip
    assert task_metrics("classification") == METRIC_NAMES - {"mse", "mae", "r2"}
    assert task_metrics("regression") == METRIC_NAMES - {"accuracy", "f1_macro", "roc_auc"}


@pytest.mark.parametrize(
    ("dataset", "params", "context"),
    [
        (DIGITS, {"compression": "prune_unstructured"}, {"kfold": 2}),
        (DIGITS, {"compression": "distill", "distill.temperature": 2.0}, {}),
        ({"source": "diabetes"}, {"compression": "prune_structured"}, {"kfold": 2}),
        ({"source": "diabetes"}, {}, {"test_fraction": 0.0}),
    ],
)
def test_every_reported_metric_is_declared(run, fast_mlp, dataset, params, context):
    """What conditions over a study may name (`reported_metrics`) covers everything a
    trial reports: a spec naming anything else is refused before the study runs."""
    from paretotune.objectives._metric_names import reported_metrics

    metrics = run({**fast_mlp, **params}, dataset=dataset, epochs=2, **context).metrics
    task = "regression" if dataset["source"] == "diabetes" else "classification"
    assert set(metrics) <= reported_metrics(task), set(metrics) - reported_metrics(task)


def test_mlp_on_digits_learns_and_measures(digits_mlp):
    m = digits_mlp.metrics
    assert m["accuracy"] > 0.8 and m["test_accuracy"] > 0.8
    assert task_metrics("classification") <= set(m)
    assert 0.5 < m["roc_auc"] <= 1.0 and 0 < m["f1_macro"] <= 1.0
    assert m["latency_ms"] > 0 and m["latency_ms_p90"] >= m["latency_ms"]
    assert m["size_bytes"] > 0 and m["throughput_sps"] > 0 and m["train_time_s"] > 0
    assert m["peak_mem_mb"] >= 0
    # depth 2, width 64, 64 inputs, 10 classes
    assert m["n_params"] == (64 * 64 + 64) + (64 * 64 + 64) + (64 * 10 + 10)
    assert len(digits_mlp.history) == 10
    assert set(digits_mlp.history[0]) == {"epoch", "train_loss", "val_loss", "val_accuracy"}
    assert digits_mlp.history[-1]["val_accuracy"] == pytest.approx(m["accuracy"], abs=1e-6)
    matrix = np.array(digits_mlp.artifacts["confusion_matrix"])
    assert matrix.shape == (10, 10) and digits_mlp.artifacts["class_labels"] == list(range(10))


def test_train_time_is_the_training_steps_and_validation_is_timed_apart(run, fast_mlp):
    # 95% of the rows validate and 5% train, then the other way round (19x the rows each):
    # each figure follows its own share of the rows, not the other's. (Width 256: a
    # validation pass of a width-32 net is ~1 ms, mostly per-call overhead, 2.6x apart.)
    wide = {**fast_mlp, "mlp.width": 256}
    small_train = run(wide, val_fraction=0.95, epochs=4).metrics
    large_train = run(wide, val_fraction=0.05, epochs=4).metrics
    assert small_train["val_time_s"] > 2 * large_train["val_time_s"] > 0
    assert large_train["train_time_s"] > 2 * small_train["train_time_s"] > 0


def test_same_params_same_accuracy(run, fast_mlp):
    first, second = run(fast_mlp), run(fast_mlp)
    assert first.metrics["accuracy"] == second.metrics["accuracy"]
    assert first.history == [{k: pytest.approx(v) for k, v in e.items()} for e in second.history]


@pytest.mark.parametrize(
    "params",
    [
        {"architecture": "cnn", "cnn.channels": 8, "cnn.head_width": 32, "learning_rate": 3e-3},
        {"architecture": "cnn", "cnn.blocks": 4, "cnn.channels": 8, "cnn.kernel_size": 5,
         "cnn.pooling": "avg", "learning_rate": 1e-2},
        {"architecture": "cnn", "cnn.blocks": 1, "cnn.channels": 4, "cnn.pooling": "none",
         "cnn.kernel_size": 1, "learning_rate": 3e-3},
        {"architecture": "rnn", "rnn.cell": "gru", "rnn.hidden_size": 32, "learning_rate": 1e-2},
        {"architecture": "rnn", "rnn.hidden_size": 16, "rnn.layers": 2,
         "rnn.bidirectional": True, "learning_rate": 1e-2},
        {"architecture": "transformer", "transformer.d_model": 30, "transformer.heads": 4,
         "learning_rate": 3e-3},
        {"architecture": "mlp", "mlp.depth": 1, "mlp.activation": "gelu", "mlp.dropout": 0.2,
         "learning_rate": 1e-2},
    ],
    ids=["cnn", "cnn-deep-avg", "cnn-nopool", "gru", "lstm-bi-2", "transformer", "mlp-gelu"],
)  # fmt: skip
def test_each_family_beats_chance(params, run):
    outcome = run(params, epochs=3)
    assert outcome.metrics["accuracy"] > 0.3  # chance is 0.1


def test_transformer_width_rounding_is_noted(run):
    outcome = run({"architecture": "transformer", "transformer.d_model": 30,
                   "transformer.heads": 4}, epochs=1)  # fmt: skip
    assert any("rounded up from 30 to 32" in n for n in outcome.artifacts["notes"])


def test_family_that_does_not_apply(run):
    with pytest.raises(ValueError, match=r"'cnn'.*'wine'"):
        run({"architecture": "cnn"}, {"source": "wine"})
    with pytest.raises(ValueError, match=r"'rnn'.*'wine'"):
        run({"architecture": "rnn"}, {"source": "wine"})


@pytest.mark.parametrize(
    "params",
    [
        {"optimizer": "sgd", "sgd.momentum": 0.9, "sgd.nesterov": True, "learning_rate": 0.05},
        {"optimizer": "sgd", "sgd.momentum": 0.0, "sgd.nesterov": True, "learning_rate": 0.1},
        {"optimizer": "adam", "learning_rate": 1e-2},
        {"optimizer": "adamw", "adamw.weight_decay": 1e-3, "learning_rate": 1e-2},
        {"optimizer": "rmsprop", "rmsprop.alpha": 0.95, "rmsprop.momentum": 0.5,
         "learning_rate": 1e-3},
    ],
    ids=["sgd-nesterov", "sgd-no-momentum", "adam", "adamw", "rmsprop"],
)  # fmt: skip
def test_each_optimizer_trains(params, run):
    outcome = run({"mlp.width": 32, **params})
    assert outcome.metrics["accuracy"] > 0.5


@pytest.mark.parametrize("schedule", ["constant", "cosine", "step"])
def test_each_lr_schedule_trains(schedule, run, fast_mlp):
    outcome = run({**fast_mlp, "lr_schedule": schedule})
    assert outcome.metrics["accuracy"] > 0.5


def test_preprocessing_and_augment(run, fast_mlp):
    minmax = run({**fast_mlp, "preprocessing": "minmax"})
    augmented = run({**fast_mlp, "augment": True})
    assert minmax.metrics["accuracy"] > 0.5 and augmented.metrics["accuracy"] > 0.5
    wine = run({**fast_mlp, "augment": True}, {"source": "wine"})
    assert "augment ignored: the dataset has no image shape" in wine.artifacts["notes"]


def test_regression_on_diabetes(run):
    outcome = run({"mlp.width": 32, "learning_rate": 1e-2}, {"source": "diabetes"}, epochs=10)
    m = outcome.metrics
    assert {"mse", "mae", "r2", "test_mse", "test_r2"} <= set(m)
    assert not {"accuracy", "f1_macro", "roc_auc"} & set(m)
    assert m["r2"] > 0.2 and m["mse"] < 5000  # target variance is ~5900
    assert set(outcome.history[0]) == {"epoch", "train_loss", "val_loss", "val_mse"}


def test_kept_model_reproduces_validation_metrics(tmp_path, fast_mlp):
    outcome = evaluate(fast_mlp, TrialContext(DIGITS, epochs=3, latency_repeats=3), keep_model=True)
    model = outcome.model
    assert model is not None and not model.training
    fold = load_dataset(DIGITS, seed=0).folds[0]
    with torch.no_grad():
        logits = model(torch.from_numpy(np.array(fold.X_val)))
    accuracy = (logits.argmax(1).numpy() == fold.y_val).mean()
    assert accuracy == pytest.approx(outcome.metrics["accuracy"])
    (tmp_path / "m.pt").write_bytes(model_to_bytes(model))
    restored = load_model_file(tmp_path / "m.pt")
    torch.testing.assert_close(restored(torch.from_numpy(np.array(fold.X_val))), logits)


def test_kept_regression_model_predicts_target_units():
    context = TrialContext({"source": "diabetes"}, epochs=3, latency_repeats=3)
    outcome = evaluate({"mlp.width": 16}, context, keep_model=True)
    fold = load_dataset({"source": "diabetes"}, seed=0).folds[0]
    with torch.no_grad():
        pred = outcome.model(torch.from_numpy(np.array(fold.X_val))).numpy()
    assert pred.shape == (len(fold.y_val),)
    assert np.mean((pred - fold.y_val) ** 2) == pytest.approx(outcome.metrics["mse"], rel=1e-4)


def test_kfold_reports_mean_over_folds(run, fast_mlp):
    outcome = run(fast_mlp, {"source": "wine"}, kfold=3, epochs=5)
    m = outcome.metrics
    assert m["n_folds"] == 3 and "accuracy_std" in m and m["accuracy"] > 0.5
    assert len(outcome.history) == 5
    assert sum(map(sum, outcome.artifacts["confusion_matrix"])) == 178 - 36  # every val row


def test_no_test_split(run, fast_mlp):
    outcome = run(fast_mlp, {"source": "wine"}, test_fraction=0.0)
    assert outcome.metrics["accuracy"] > 0.5
    assert not any(name.startswith("test_") for name in outcome.metrics)


def test_on_epoch_sees_each_history_entry(run, fast_mlp):
    seen: list[tuple[int, dict[str, float]]] = []
    outcome = run(fast_mlp, on_epoch=lambda e, entry: seen.append((e, dict(entry))))
    assert [e for e, _ in seen] == [1, 2, 3]
    # each history entry, plus the training time so far (early stopping ranks by it)
    assert [{k: v for k, v in entry.items() if k != "train_time_s"} for _, entry in seen] == (
        outcome.history
    )
    so_far = [entry["train_time_s"] for _, entry in seen]
    assert 0 < so_far[0] < so_far[1] < so_far[2] <= outcome.metrics["train_time_s"]


def test_stop_training_stops_and_propagates(fast_mlp):
    calls: list[int] = []

    def stop_after_two(epoch: int, entry: object) -> None:
        calls.append(epoch)
        if epoch == 2:
            raise StopTraining

    with pytest.raises(StopTraining):
        evaluate(fast_mlp, TrialContext(DIGITS, epochs=10), on_epoch=stop_after_two)
    assert calls == [1, 2]


def test_user_files_train(tmp_path, run, fast_mlp):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 5, 6)).astype(np.float32)
    y = (X[:, :, 0].sum(1) > 0).astype(int)
    np.savez(tmp_path / "seq.npz", X=X, y=y)
    npz = {"source": "npz", "path": str(tmp_path / "seq.npz")}
    for family in ("mlp", "cnn", "rnn"):
        outcome = run({"architecture": family, "learning_rate": 1e-2}, npz, epochs=10)
        assert outcome.metrics["accuracy"] > 0.55  # better than the majority class
    lines = ["f1,f2,label"] + [
        f"{a:.3f},{b:.3f},{'yes' if a + b > 0 else 'no'}" for a, b in rng.normal(size=(80, 2))
    ]
    (tmp_path / "d.csv").write_text("\n".join(lines))
    csv = {"source": "csv", "path": str(tmp_path / "d.csv"), "target": "label"}
    outcome = run({**fast_mlp}, csv, epochs=10)
    assert outcome.metrics["accuracy"] > 0.6 and outcome.artifacts["class_labels"] == ["no", "yes"]


def test_unavailable_cuda_is_a_clear_error(run, fast_mlp):
    if torch.cuda.is_available():
        pytest.skip("cuda is available here")
    with pytest.raises(ValueError, match="context.device"):
        run(fast_mlp, device="cuda")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_training_and_latency(run, fast_mlp):
    outcome = run(fast_mlp, device="cuda", epochs=5, keep_model=False)
    assert outcome.metrics["accuracy"] > 0.8
    assert outcome.artifacts["latency_device"] == "cuda"


def test_a_diverging_training_fails_instead_of_reaching_the_front(run, fast_mlp):
    with pytest.raises(TrainingDiverged, match=r"training diverged: loss .* after epoch 1 "):
        run({**fast_mlp, "optimizer": "adam", "learning_rate": 1.0}, epochs=5)
    # no explosion, but a model at chance (0.097 on digits): no better than the majority
    nowhere = r"no better than a trivial predictor: accuracy .* never fell"
    with pytest.raises(TrivialModel, match=nowhere):
        run({**fast_mlp, "optimizer": "sgd", "learning_rate": 10.0}, epochs=5)
    run({**fast_mlp, "optimizer": "sgd", "learning_rate": 0.1}, epochs=5)  # a sane one trains
