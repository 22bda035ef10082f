"""Compression: every option runs, reports before/after, and really changes the model."""

from __future__ import annotations

import pytest
import torch
from paretotune.objectives import COMPRESSIONS, model_from_bytes, model_to_bytes
from paretotune.objectives._distill import CACHE_ENV
from torch import nn

BEFORE = ("accuracy_before_compression", "size_bytes_before_compression",
          "latency_ms_before_compression")  # fmt: skip


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_each_compression_runs_and_reports_before_and_after(compression, run, fast_mlp):
    outcome = run({**fast_mlp, "compression": compression}, keep_model=True)
    m = outcome.metrics
    assert all(name in m for name in BEFORE)
    assert m["accuracy"] > 0.5 and m["accuracy_before_compression"] > 0.5
    assert m["size_bytes"] > 0 and m["latency_ms"] > 0
    assert outcome.model is not None
    with torch.no_grad():
        assert outcome.model(torch.zeros(3, 64)).shape == (3, 10)
    restored = model_from_bytes(model_to_bytes(outcome.model), "test")  # what a worker ships
    with torch.no_grad():
        torch.testing.assert_close(restored(torch.ones(2, 64)), outcome.model(torch.ones(2, 64)))


def test_int8_contains_quantized_modules_and_is_smaller(run, fast_mlp):
    outcome = run({**fast_mlp, "compression": "int8_dynamic"}, keep_model=True)
    kinds = {type(m).__module__ for m in outcome.model.modules()}
    assert any("quantized" in k for k in kinds)
    assert not any(type(m) is nn.Linear for m in outcome.model.modules())
    m = outcome.metrics
    assert m["size_bytes"] < m["size_bytes_before_compression"]
    assert m["n_params"] == m["n_params_before_compression"]


@pytest.mark.parametrize("family", ["rnn", "transformer"])
def test_int8_on_sequence_families(family, run):
    outcome = run({"architecture": family, "compression": "int8_dynamic"}, epochs=1,
                  keep_model=True)  # fmt: skip
    assert any("quantized" in type(m).__module__ for m in outcome.model.modules())


@pytest.mark.parametrize(
    ("compression", "dtype"), [("fp16", torch.float16), ("bf16", torch.bfloat16)]
)
def test_half_precision_casts_weights(compression, dtype, run, fast_mlp):
    outcome = run({**fast_mlp, "compression": compression}, keep_model=True)
    assert {p.dtype for p in outcome.model.parameters()} == {dtype}
    assert outcome.metrics["size_bytes"] < outcome.metrics["size_bytes_before_compression"]
    with torch.no_grad():
        assert outcome.model(torch.zeros(2, 64)).dtype == torch.float32


def test_structured_pruning_really_shrinks_layers(run, fast_mlp):
    params = {**fast_mlp, "mlp.width": 40, "compression": "prune_structured",
              "prune_structured.amount": 0.5, "prune_structured.finetune_epochs": 1}  # fmt: skip
    outcome = run(params, keep_model=True)
    shapes = [tuple(m.weight.shape) for m in outcome.model.modules() if isinstance(m, nn.Linear)]
    assert shapes == [(20, 64), (20, 20), (10, 20)]
    m = outcome.metrics
    assert m["n_params"] == 20 * 64 + 20 + 20 * 20 + 20 + 10 * 20 + 10
    assert m["n_params"] < m["n_params_before_compression"]
    assert m["size_bytes"] < m["size_bytes_before_compression"]
    assert len(outcome.artifacts["finetune_history"][0]) == 1


@pytest.mark.parametrize(
    ("params", "check"),
    [
        ({"architecture": "cnn", "cnn.channels": 8, "cnn.head_width": 16},
         lambda model: [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)]
         == [4, 8]),
        ({"architecture": "rnn", "rnn.hidden_size": 16, "rnn.layers": 2,
          "rnn.bidirectional": True},
         lambda model: model.net.rnn.hidden_size == 8 and model.net.head.in_features == 16),
        ({"architecture": "rnn", "rnn.cell": "gru", "rnn.hidden_size": 16},
         lambda model: model.net.rnn.hidden_size == 8),
        ({"architecture": "transformer", "transformer.ff_width": 32},
         lambda model: model.net.blocks[0].ff1.out_features == 16),
    ],
    ids=["cnn", "lstm-bi-2", "gru", "transformer"],
)  # fmt: skip
def test_structured_pruning_of_other_families(params, check, run):
    outcome = run({**params, "compression": "prune_structured", "learning_rate": 1e-2},
                  epochs=2, keep_model=True)  # fmt: skip
    assert check(outcome.model)
    assert outcome.metrics["n_params"] < outcome.metrics["n_params_before_compression"]
    assert outcome.metrics["accuracy"] > 0.2


def test_unstructured_pruning_reports_sparse_size(run, fast_mlp):
    params = {**fast_mlp, "compression": "prune_unstructured", "prune_unstructured.sparsity": 0.5}
    m = run(params).metrics
    assert m["sparsity"] == pytest.approx(0.5, abs=0.01)
    assert m["size_bytes"] < m["size_bytes_dense"]
    # same dense bytes as before pruning, up to the reordered state-dict keys
    assert m["size_bytes_dense"] == pytest.approx(m["size_bytes_before_compression"], abs=256)
    assert m["n_params_nonzero"] < m["n_params"]


def test_distillation_caches_the_teacher(run, fast_mlp, tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    params = {**fast_mlp, "compression": "distill", "distill.temperature": 2.0}
    first = run(params, seed=11)
    second = run({**params, "distill.alpha": 0.7}, seed=11)
    assert first.metrics["teacher_train_time_s"] > 0
    assert second.metrics["teacher_train_time_s"] == 0.0
    assert list((tmp_path / "teachers").glob("teacher-*.pt"))
    # the teacher is the bigger model: "before" is its size
    assert first.metrics["size_bytes_before_compression"] > first.metrics["size_bytes"]
    # a cached teacher does not change the student's result
    from paretotune.objectives import _distill

    _distill._MEMORY.clear()
    third = run(params, seed=11)  # teacher now loaded from disk
    assert third.metrics["teacher_train_time_s"] == 0.0
    assert third.metrics["accuracy"] == first.metrics["accuracy"]


def test_distillation_for_regression(run):
    outcome = run({"compression": "distill", "learning_rate": 1e-2}, {"source": "diabetes"})
    assert "mse_before_compression" in outcome.metrics and outcome.metrics["mse"] > 0


def _kill_units(model: nn.Module) -> None:
    """Zero the incoming weights and biases of the first half of every prunable unit set,
    so those units output exactly 0 and pruning them must not change the predictions."""
    from paretotune.objectives._models import RNNNet, TransformerNet

    net = model.net
    with torch.no_grad():
        if isinstance(net, RNNNet):
            rnn = net.rnn
            gates, hidden = (4 if isinstance(rnn, nn.LSTM) else 3), rnn.hidden_size
            rows = torch.cat([g * hidden + torch.arange(hidden // 2) for g in range(gates)])
            for p in rnn.parameters():
                p[rows] = 0
        elif isinstance(net, TransformerNet):
            for block in net.blocks:
                block.ff1.weight[: block.ff1.out_features // 2] = 0
                block.ff1.bias[: block.ff1.out_features // 2] = 0
        else:
            layers = [m for m in net if isinstance(m, nn.Linear | nn.Conv2d)][:-1]
            for layer in layers:
                layer.weight[: layer.weight.shape[0] // 2] = 0
                layer.bias[: layer.weight.shape[0] // 2] = 0


@pytest.mark.parametrize(
    "params",
    [
        {"architecture": "mlp", "mlp.depth": 3, "mlp.width": 12, "mlp.activation": "tanh"},
        {"architecture": "cnn", "cnn.blocks": 2, "cnn.channels": 4, "cnn.head_width": 8},
        {"architecture": "rnn", "rnn.hidden_size": 6, "rnn.layers": 2, "rnn.bidirectional": True},
        {"architecture": "rnn", "rnn.cell": "gru", "rnn.hidden_size": 6, "rnn.layers": 2},
        {"architecture": "transformer", "transformer.ff_width": 8, "transformer.layers": 2},
    ],
    ids=["mlp", "cnn", "lstm", "gru", "transformer"],
)
def test_structured_pruning_of_dead_units_keeps_predictions(params):
    from paretotune.objectives import dataset_info, load_dataset, resolve_params
    from paretotune.objectives._compression import prune_structured
    from paretotune.objectives._models import build_predictor

    fold = load_dataset({"source": "digits"}, seed=0).folds[0]
    torch.manual_seed(0)
    model = build_predictor(
        resolve_params(params), dataset_info({"source": "digits"}), fold.X_train, fold.y_train
    ).eval()
    _kill_units(model)
    X = torch.from_numpy(fold.X_val[:50].copy())
    with torch.no_grad():
        expected = model(X)
        n_before = sum(p.numel() for p in model.parameters())
        pruned = prune_structured(model, 0.5)
        torch.testing.assert_close(pruned(X), expected, rtol=1e-5, atol=1e-5)
    assert sum(p.numel() for p in pruned.parameters()) < n_before
